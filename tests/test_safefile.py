"""bench.model.safefile: new names claimed atomically (threads and processes at once), regular files only
(never a device, FIFO, socket or directory replaced, written through or read), bounded reads, and a
failed write (full disk, quota, read-only) that names the path and leaves nothing partial."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from bench.model import safefile
from bench.errors import FileWriteError, ResultFileError, UsageError

N = 8


# ---------------------------------------------------------------- special files to aim at


def _chardev(path: Path) -> Path:
    """A character device like /dev/null (1, 3), made with mknod; skips where that is not permitted."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError) as exc:
        pytest.skip(f"mknod not permitted here ({exc})")
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _socket(path: Path) -> Path:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
    except OSError as exc:  # pragma: no cover - a path too long for AF_UNIX
        pytest.skip(f"cannot bind a unix socket here ({exc})")
    finally:
        s.close()
    return path


SPECIAL = {"chardev": (_chardev, "a character device"), "fifo": (_fifo, "a FIFO (named pipe)"),
           "socket": (_socket, "a socket")}


def _identity(path: Path) -> tuple:
    st = os.lstat(path)
    return (st.st_ino, st.st_mode, st.st_rdev)


# ---------------------------------------------------------------- claiming new names


def _claim_and_write(directory: str, stem: str, content: str) -> str:
    path = safefile.claim_new(directory, stem)
    safefile.atomic_write_text(path, content)
    return str(path)


def test_claims_at_once_from_threads_get_distinct_files(tmp_path):
    barrier = threading.Barrier(N)
    got: list[str] = []

    def claim(i):
        barrier.wait()  # all at the same moment, same stem
        got.append(_claim_and_write(str(tmp_path), "lorenz-quick-20240101-120000-lab", f"thread {i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = sorted(tmp_path.glob("*.json"))
    assert len(set(got)) == N and len(files) == N
    assert sorted(f.read_text() for f in files) == sorted(f"thread {i}" for i in range(N))
    assert {f.name for f in files} == {"lorenz-quick-20240101-120000-lab.json"} | {
        f"lorenz-quick-20240101-120000-lab-{n}.json" for n in range(2, N + 1)}


def _claim_in_process(args):
    directory, i, start = args
    start.wait()
    return _claim_and_write(directory, "lorenz-quick-20240101-120000-lab", f"process {i}")


def test_claims_at_once_from_processes_get_distinct_files(tmp_path):
    ctx = multiprocessing.get_context("spawn")  # never fork a test process (it may hold TensorFlow)
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(N) as pool:
            pending = pool.map_async(_claim_in_process, [(str(tmp_path), i, start) for i in range(N)])
            start.set()
            got = pending.get(timeout=120)
    files = sorted(tmp_path.glob("*.json"))
    assert len(set(got)) == N and len(files) == N
    assert sorted(f.read_text() for f in files) == sorted(f"process {i}" for i in range(N))


def test_a_claim_never_opens_or_replaces_what_exists(tmp_path):
    (tmp_path / "a.json").write_text("old")
    _fifo(tmp_path / "a-2.json")
    (tmp_path / "a-3.json").symlink_to(tmp_path / "elsewhere")
    path = safefile.claim_new(tmp_path, "a")
    assert path.name == "a-4.json" and path.stat().st_size == 0
    assert (tmp_path / "a.json").read_text() == "old"
    assert stat.S_ISFIFO(os.lstat(tmp_path / "a-2.json").st_mode)
    assert not (tmp_path / "elsewhere").exists()  # the dangling link was not followed


def test_a_claim_in_a_directory_that_takes_no_file_names_it(tmp_path):
    with pytest.raises(FileWriteError, match=r"cannot write .*missing.*\(No such file or directory\)"):
        safefile.claim_new(tmp_path / "missing", "a")


# ---------------------------------------------------------------- output paths that are not regular files


@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_a_special_file_is_never_replaced(tmp_path, kind):
    make, name = SPECIAL[kind]
    target = make(tmp_path / "out.html")
    before = _identity(target)
    with pytest.raises(FileWriteError) as info:
        safefile.atomic_write_text(target, "<html>")
    assert str(info.value) == f"{str(target)!r} is {name}, not a regular file; choose a file path"
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    assert _identity(target) == before
    assert os.listdir(tmp_path) == ["out.html"]  # no temporary file left


def test_a_link_to_a_device_is_refused_and_a_link_to_a_file_is_followed(tmp_path):
    dev = _chardev(tmp_path / "null")
    link = tmp_path / "report.html"
    link.symlink_to(dev)
    with pytest.raises(FileWriteError, match=r"is a link to a character device \(.*null\), not a regular file"):
        safefile.atomic_write_text(link, "x")
    assert link.is_symlink() and stat.S_ISCHR(os.stat(dev).st_mode)

    real = tmp_path / "real.html"
    real.write_text("old")
    other = tmp_path / "other.html"
    other.symlink_to(real)
    safefile.atomic_write_text(other, "new")
    assert other.is_symlink() and real.read_text() == "new"  # the file replaced, the link kept


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(FileWriteError, match="is a directory, not a regular file"):
        safefile.atomic_write_text(tmp_path / "d", "x")


def test_a_device_swapped_in_during_the_write_is_not_renamed_over(tmp_path, monkeypatch):
    """The target is checked again right before the rename."""
    target = tmp_path / "r.json"
    target.write_text("old")
    real_fsync = os.fsync

    def swap_then_fsync(fd):
        if target.exists() and not stat.S_ISFIFO(os.lstat(target).st_mode):
            target.unlink()
            os.mkfifo(target)
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", swap_then_fsync)
    with pytest.raises(FileWriteError, match="is a FIFO"):
        safefile.atomic_write_text(target, "new")
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert os.listdir(tmp_path) == ["r.json"]


# ---------------------------------------------------------------- a write that fails


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_a_failed_write_names_the_path_and_keeps_the_old_file(tmp_path, monkeypatch, code):
    target = tmp_path / "report.html"
    target.write_text("old report")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()

    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(FileWriteError) as info:
        safefile.atomic_write_text(target, "new report " * 1000)
    assert str(info.value) == f"cannot write {str(target)!r} ({os.strerror(code)})"
    assert info.value.errno == code and isinstance(info.value, OSError)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    assert os.listdir(tmp_path) == ["report.html"]


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_directory_that_takes_no_new_file_is_one_error(tmp_path, monkeypatch, code):
    def refused(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(safefile.tempfile, "mkstemp", refused)
    with pytest.raises(FileWriteError, match=rf"cannot write .*new\.html.* \({os.strerror(code)}\)"):
        safefile.atomic_write_text(tmp_path / "new.html", "x")
    assert os.listdir(tmp_path) == []


def test_a_real_read_only_directory_is_one_error(tmp_path):
    """The real errno path (no injection) where the OS allows it: not as root."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: a read-only directory is still writable")
        with pytest.raises(FileWriteError, match=r"cannot write .*\(Permission denied\)"):
            safefile.atomic_write_text(ro / "r.html", "x")
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o700)


def test_a_long_target_name_still_gets_a_temporary_file(tmp_path):
    name = "r" * 250 + ".json"
    safefile.atomic_write_text(tmp_path / name, "x")
    assert os.listdir(tmp_path) == [name]


# ---------------------------------------------------------------- reading only regular files


@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_reading_a_special_file_is_refused_before_reading(tmp_path, kind):
    make, name = SPECIAL[kind]
    path = make(tmp_path / "r.json")
    with pytest.raises(ResultFileError, match=rf"r\.json: is {name.replace('(', '.').replace(')', '.')}, not a regular file"):
        safefile.read_regular(path, 1 << 20)  # a FIFO would block here forever if it were opened blocking


def test_reading_through_a_link_to_dev_zero_is_refused(tmp_path):
    link = tmp_path / "r.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(ResultFileError, match="is a character device, not a regular file"):
        safefile.read_regular(link, 1 << 20)


def test_reading_is_capped(tmp_path):
    p = tmp_path / "big.json"
    p.write_bytes(b"x" * 1001)
    assert safefile.read_regular(p, 1001) == b"x" * 1001
    with pytest.raises(ResultFileError, match=r"too large for a result file \(1,001 bytes; the limit is 1,000\)"):
        safefile.read_regular(p, 1000)


def test_reading_missing_and_directory(tmp_path):
    with pytest.raises(ResultFileError, match="nope.json: no such file"):
        safefile.read_regular(tmp_path / "nope.json", 10)
    with pytest.raises(ResultFileError, match="is a directory, not a result file"):
        safefile.read_regular(tmp_path, 10)


def test_kind_names():
    assert safefile.kind(stat.S_IFREG) == "a regular file"
    assert safefile.kind(stat.S_IFCHR) == "a character device"
    assert safefile.kind(stat.S_IFBLK) == "a block device"
    assert safefile.kind(stat.S_IFDIR) == "a directory"
