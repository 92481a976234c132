"""The files the tool reads and writes: regular files only, bounded reads, atomic writes, new names
claimed atomically. Every path xpubench opens from a user or a directory listing goes through here.

- :func:`read_regular` opens a file only if it is a regular file (a FIFO, a device such as
  ``/dev/zero``, a socket or a directory is refused before anything is read, also through a
  symbolic link), refuses a file over a size limit before reading it, and reads at most that much.
- :func:`check_target` refuses an output path that exists and is not a regular file (a device
  such as ``/dev/null``, a FIFO, a socket, a directory, a link to one of them): such a path is
  never replaced and never written through. A symbolic link to a regular file is followed: the
  file it points to is replaced, the link stays.
- :func:`atomic_write_bytes` writes a temporary file in the same directory, fsyncs it, checks the
  target again and renames it over the target. On any failure (a full disk, a read-only
  directory, Ctrl-C) the temporary file is removed and the target keeps its old content; an
  OSError becomes :class:`bench.errors.FileWriteError` naming the path.
- :func:`claim_new` creates a new, empty file with ``O_CREAT | O_EXCL`` (``NAME.json``, else
  ``NAME-2.json``...), so processes writing into one directory at the same second never pick the
  same name; the content is then renamed over the claimed file.

Importing this module imports nothing beyond the standard library and :mod:`bench.errors`.
"""

from __future__ import annotations

import errno as _errno
import os
import stat
import tempfile
from pathlib import Path

from bench.errors import FileWriteError, ResultFileError, UsageError, shown

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)
_TEMP_NAME_CHARS = 60  # of the target's name in a temporary file's name (the whole stays < 255 bytes)


def kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, for messages: ``a regular file``, ``a FIFO (named pipe)``...

    Args:
        mode: ``os.stat_result.st_mode``.
    """
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


# ---------------------------------------------------------------- reading


def read_regular(path: str | os.PathLike, limit: int, what: str = "result file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    The file is checked before it is opened (``stat``, following links), opened with
    ``O_NONBLOCK`` (a FIFO swapped in meanwhile cannot block the open), checked again on the
    open descriptor, and read to at most ``limit + 1`` bytes.

    Args:
        path: The file.
        limit: The largest size accepted, in bytes.
        what: What the file should be, for messages (``result file``).

    Raises:
        ResultFileError: ``PATH: no such file``, ``PATH: is a directory, not a result file``,
            ``PATH: is a FIFO (named pipe), not a regular file``, ``PATH: too large ...``,
            ``PATH: cannot read (Permission denied)``.
    """
    name = str(path)
    try:
        _check_readable(name, os.stat(name).st_mode, what)
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ResultFileError(f"{name}: no such file") from None
    except OSError as exc:
        raise ResultFileError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        _check_readable(name, info.st_mode, what)
        if info.st_size > limit:
            raise ResultFileError(f"{name}: too large for a {what} ({info.st_size:,} bytes; the limit is {limit:,})")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ResultFileError(f"{name}: too large for a {what} (grew past {limit:,} bytes while read)")
        return b"".join(chunks)
    except OSError as exc:
        raise ResultFileError(f"{name}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _check_readable(name: str, mode: int, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise ResultFileError(f"{name}: is a directory, not a {what}")
    raise ResultFileError(f"{name}: is {kind(mode)}, not a regular file")


# ---------------------------------------------------------------- writing


def not_regular_error(path: str | os.PathLike, mode: int, via: str | None = None) -> FileWriteError:
    """The error for an output path that is not a regular file.

    Args:
        path: The path as given.
        mode: Its ``st_mode`` (of what a link points to, when ``via`` is given).
        via: The file a symbolic link points to, if ``path`` is one.
    """
    what = kind(mode) if via is None else f"a link to {kind(mode)} ({via})"
    return FileWriteError(
        f"{shown(path)} is {what}, not a regular file; choose a file path",
        errno=_errno.EISDIR if stat.S_ISDIR(mode) else None, strerror=f"{kind(mode)}, not a regular file",
        filename=str(path),
    )


def check_target(path: str | os.PathLike) -> Path:
    """The file to replace for an output ``path``: ``path`` itself, or what a link points to.

    Nothing that exists and is not a regular file is ever replaced or written through.

    Args:
        path: An output file (it may not exist yet).

    Returns:
        The path to write (the target of a symbolic link, else ``path``).

    Raises:
        FileWriteError: ``PATH is a character device, not a regular file; choose a file path``
            (also for a FIFO, a socket, a directory, or a link to one of them).
    """
    path = Path(path)
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing there to replace (the write says why it fails)
        return path
    except OSError as exc:
        raise _write_error(path, exc) from None
    if stat.S_ISREG(info.st_mode):
        return path
    if not stat.S_ISLNK(info.st_mode):
        raise not_regular_error(path, info.st_mode)
    target = Path(os.path.realpath(path))
    try:
        info = os.stat(target)
    except FileNotFoundError:  # a dangling link: the file it names is created
        return target
    except OSError as exc:
        raise _write_error(path, exc) from None
    if not stat.S_ISREG(info.st_mode):
        raise not_regular_error(path, info.st_mode, via=str(target))
    return target


def _write_error(path: str | os.PathLike, exc: OSError) -> FileWriteError:
    reason = exc.strerror or str(exc)
    return FileWriteError(f"cannot write {shown(path)} ({reason})", errno=exc.errno, strerror=reason, filename=str(path))


def _new_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes a file so that readers see the old or the new content, never half of it.

    The data goes to a temporary file in the same directory, is flushed and fsynced, the target
    is checked once more (still not a device, FIFO, socket or directory), and the temporary file
    is renamed over it (then the directory is fsynced). On any failure, Ctrl-C included, the
    temporary file is removed and the target keeps its old content.

    Args:
        path: The file to (re)place. An existing file keeps its permission bits; a symbolic link
            to a regular file is followed (the file it points to is replaced, the link stays).
        data: The whole new content.

    Returns:
        ``path`` as a Path.

    Raises:
        FileWriteError: ``cannot write PATH (No space left on device)`` (any OSError: a full
            disk, a read-only directory, a quota), or ``PATH is a character device, not a
            regular file; choose a file path``.
    """
    given = Path(path)
    target = check_target(given)
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        mode = _new_file_mode()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:_TEMP_NAME_CHARS]}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _write_error(given, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)  # mkstemp makes 0600 files
            os.fsync(f.fileno())
        check_target(target)  # right before the rename: never over something swapped in meanwhile
        os.replace(tmp, target)
    except BaseException as exc:  # clean-up only (Ctrl-C included): the temporary file goes, the error goes on
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, UsageError):
            raise _write_error(given, exc) from None
        raise
    try:
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover - some filesystems refuse directory fsync
        pass
    return given


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------- new names


def claim_new(directory: str | os.PathLike, stem: str, suffix: str = ".json", tries: int = 10_000) -> Path:
    """Creates a new, empty file ``DIRECTORY/STEM.SUFFIX`` (else ``STEM-2.SUFFIX``...) atomically.

    ``O_CREAT | O_EXCL`` makes the claim: of any number of processes or threads claiming the
    same name at once, exactly one gets it and the others move on to the next number. Nothing
    existing is ever opened or replaced. Write the content with :func:`atomic_write_bytes`
    (which renames over the empty file).

    Args:
        directory: An existing directory.
        stem: The file name without suffix (already safe: see ``bench.sweep.sweep.result_path``).
        suffix: The file name's ending.
        tries: How many numbers to try before giving up.

    Returns:
        The path of the empty file now owned by the caller.

    Raises:
        FileWriteError: the directory does not accept a new file (read-only, full, missing...).
    """
    directory = Path(directory)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for n in range(1, tries + 1):
        path = directory / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            fd = os.open(path, flags, 0o666)  # the umask applies, as for open(path, "w")
        except FileExistsError:
            continue
        except OSError as exc:
            raise _write_error(path, exc) from None
        os.close(fd)
        return path
    raise FileWriteError(f"cannot claim a new file name like {shown(directory / (stem + suffix))} ({tries} taken)",
                         filename=str(directory))
