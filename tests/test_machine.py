"""The fingerprint's ``backends``: each installed Keras backend's version and build, read from
package metadata and installed files, never by importing a framework."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from bench.measure import machine


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_backends_lists_the_installed_ones_with_their_versions():
    fp = machine.fingerprint("box")
    backends = fp["backends"]
    installed = {n for n, dist in (("tensorflow", "tensorflow"), ("jax", "jax"), ("torch", "torch")) if _version(dist)}
    assert installed <= set(backends) <= {"tensorflow", "jax", "torch"}
    for name, facts in backends.items():
        assert facts["version"] == _version(facts["dist"]) and isinstance(facts["build"], dict)
        assert facts["build"]["source"]
    if "torch" in backends:
        version = backends["torch"]["version"]
        assert backends["torch"]["build"]["variant"] == (version.split("+", 1)[1] if "+" in version else None)
        if backends["torch"]["build"]["variant"] == "cpu":
            assert backends["torch"]["build"]["cuda"] is None  # torch/version.py of a CPU wheel says so
    if "jax" in backends:
        assert backends["jax"]["build"]["jaxlib"] == _version("jaxlib")
    if "tensorflow" in backends and backends["tensorflow"]["build"].get("is_cuda_build"):
        assert isinstance(backends["tensorflow"]["build"]["cuda"], str)
    # the keys that were there before stay
    assert fp["tensorflow"] == (_version("tensorflow") or _version("tensorflow-cpu"))
    assert fp["keras"] == _version("keras")


def test_the_fingerprint_imports_no_framework():
    code = (
        "import sys\n"
        "from bench.measure.machine import fingerprint\n"
        "fp = fingerprint()\n"
        "assert isinstance(fp['backends'], dict)\n"
        "print(','.join(m for m in ('tensorflow', 'keras', 'jax', 'jaxlib', 'torch') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"


def _dist(site: Path, name: str, version: str, requires=(), files: dict[str, str] | None = None) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    for rel, text in (files or {}).items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(textwrap.dedent(text))


def test_cuda_builds_are_read_from_their_installed_files(tmp_path, monkeypatch):
    """CUDA builds of all three, installed as pip lays them out (dist-info + the files that say the
    build), found first on the path: what each says is recorded, nothing is imported."""
    site = tmp_path / "site"
    _dist(site, "tensorflow", "2.16.1", files={"tensorflow/python/platform/build_info.py": """\
        import collections
        build_info = collections.OrderedDict([('cuda_version', '12.3'), ('cudnn_version', '8'),
            ('is_cuda_build', True), ('is_rocm_build', False), ('cuda_compute_capabilities', ['sm_80'])])
        """})
    _dist(site, "torch", "2.4.0+cu121", requires=['nvidia-cudnn-cu12==9.1.0.70; platform_system == "Linux"',
                                                  'optree>=0.12; extra == "optree"'],
          files={"torch/version.py": """\
        from typing import Optional
        __version__ = '2.4.0+cu121'
        cuda: Optional[str] = '12.1'
        hip: Optional[str] = None
        """})
    _dist(site, "jax", "0.4.30")
    _dist(site, "jaxlib", "0.4.30")
    _dist(site, "jax-cuda12-plugin", "0.4.30")
    _dist(site, "jax-cuda12-pjrt", "0.4.30")
    _dist(site, "nvidia-cudnn-cu12", "9.1.0.70")
    monkeypatch.syspath_prepend(str(site))
    before = set(sys.modules)
    b = machine.backend_builds()
    assert b["tensorflow"] == {"version": "2.16.1", "dist": "tensorflow", "build": {
        "cuda": "12.3", "cudnn": "8", "is_cuda_build": True, "is_rocm_build": False,
        "cuda_compute_capabilities": ["sm_80"], "source": "tensorflow/python/platform/build_info.py"}}
    assert b["torch"] == {"version": "2.4.0+cu121", "dist": "torch", "build": {
        "variant": "cu121", "cuda": "12.1", "rocm": None, "hip": None, "cudnn": "9.1.0.70",
        "source": "torch/version.py"}}
    assert b["jax"] == {"version": "0.4.30", "dist": "jax", "build": {
        "jaxlib": "0.4.30", "plugins": {"jax-cuda12-pjrt": "0.4.30", "jax-cuda12-plugin": "0.4.30"}, "cuda": "12",
        "rocm": None, "cudnn": "9.1.0.70", "source": "installed plugin packages"}}
    assert not {m for m in set(sys.modules) - before if m.split(".")[0] in ("tensorflow", "torch", "jax")}


def test_a_build_file_that_is_missing_or_no_literal_is_not_said(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _dist(site, "tensorflow-cpu", "2.16.1")  # no build_info.py installed
    _dist(site, "torch", "2.3.0", files={"torch/version.py": "cuda = get_cuda()\n"})  # not a literal
    monkeypatch.syspath_prepend(str(site))
    b = machine.backend_builds()
    if _version("tensorflow") is None:  # a real tensorflow wins over the fake tensorflow-cpu
        assert b["tensorflow"]["dist"] == "tensorflow-cpu"
        assert b["tensorflow"]["build"] == {"source": "not said (no tensorflow/python/platform/build_info.py)"}
    assert b["torch"]["build"] == {"variant": None, "cuda": None, "rocm": None, "hip": None, "cudnn": None,
                                   "source": "not said (torch/version.py gives no cuda)"}
