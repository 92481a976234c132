"""Workload specs: a user's own workload class named as ``path/to/file.py:Class`` or
``package.module:Class``.

The parent validates a spec before anything is written (the file or module imports, the class is
there, it is a ``Workload``) and every worker imports the class by the same spec: a file spec is
imported by path, with the file's folder put on ``sys.path`` first (so the file can import its
neighbours); a module spec is imported by name from the worker's ``PYTHONPATH``, which the parent
hands on (bench/engines/childenv.py). A class object (the ``xpu`` fixture takes one) is mapped back
to the spec a worker can import it by (:func:`spec_of`).

This module does not know the Workload class (bench.model.workload imports it, not the other way
round): :func:`load_class` is given the base class to check against.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Iterable

from bench.errors import UsageError, shown

#: Prefix of the module names files imported by path get (``xpubench_spec_<hash>_<stem>``): a
#: user's ``utils.py`` never replaces an importable ``utils`` module.
MODULE_PREFIX = "xpubench_spec_"

_CLASSES: dict[str, type] = {}  # canonical spec -> the class already loaded (or handed in) in this process


@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed workload spec.

    Args:
        text: The canonical spec: ``/absolute/path/file.py:Class`` or ``package.module:Class``.
        target: The file's absolute path, or the module name.
        attr: The class's (qualified) name in the module.
        is_file: Whether ``target`` is a file (imported by path) rather than a module name.
    """

    text: str
    target: str
    attr: str
    is_file: bool

    @property
    def where(self) -> str:
        """How messages name the spec's file or module."""
        return shown(self.target) if self.is_file else f"module {shown(self.target)}"


def is_spec(name: str) -> bool:
    """Whether a workload name is a spec (it has a ``:``) rather than a registered name."""
    return ":" in str(name)


def looks_like_spec(name: str) -> bool:
    """Whether a name without ``:`` was meant as a spec (a ``.py`` file, a path or a dotted module)."""
    name = str(name)
    return name.endswith(".py") or "/" in name or os.sep in name or "." in name


def parse_spec(text: str) -> Spec:
    """Parses ``file.py:Class`` or ``package.module:Class``.

    Args:
        text: The spec as given (a file path may be relative to the current directory).

    Raises:
        UsageError: no ``:``, or nothing before or after it.
    """
    text = str(text)
    target, sep, attr = text.rpartition(":")
    if not sep or not target.strip() or not attr.strip():
        example = (text or "my_benchmarks.py").split(":")[0] or "my_benchmarks.py"
        raise UsageError(f"bad workload spec {shown(text)}: expected FILE.py:Class or package.module:Class "
                         f"(e.g. {example}:MyWorkload)")
    attr = attr.strip()
    if not all(part.isidentifier() for part in attr.split(".")):
        raise UsageError(f"bad workload spec {shown(text)}: {shown(attr)} is not a class name")
    is_file = target.endswith(".py") or "/" in target or os.sep in target
    if is_file:
        path = Path(target).expanduser().resolve()
        return Spec(f"{path}:{attr}", str(path), attr, True)
    if not all(part.isidentifier() for part in target.split(".")):
        raise UsageError(f"bad workload spec {shown(text)}: {shown(target)} is neither a .py file nor a module name")
    return Spec(f"{target}:{attr}", target, attr, False)


def module_name(path: str | os.PathLike) -> str:
    """The module name a file imported by path gets: unique per absolute path.

    Args:
        path: The file (absolute).
    """
    p = Path(path)
    stem = "".join(c if c.isalnum() else "_" for c in p.stem)
    return f"{MODULE_PREFIX}{hashlib.sha256(str(p).encode('utf-8', 'surrogatepass')).hexdigest()[:10]}_{stem}"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def load_module(spec: Spec):
    """Imports the spec's file (by path, its folder first on ``sys.path``) or module (by name).

    Args:
        spec: A parsed spec.

    Raises:
        UsageError: the file does not exist, the module is not found, or importing it raised
            (its exception in one line).
    """
    if not spec.is_file:
        try:
            return importlib.import_module(spec.target)
        except ModuleNotFoundError as exc:
            missing = exc.name or spec.target
            if spec.target == missing or spec.target.startswith(missing + "."):
                raise UsageError(f"workload module {shown(spec.target)} not found (is its folder on PYTHONPATH?)") from None
            raise UsageError(f"cannot import workload module {shown(spec.target)}: {_one_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - user code: any error importing it is one line
            raise UsageError(f"cannot import workload module {shown(spec.target)}: {_one_line(exc)}") from None
    path = Path(spec.target)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UsageError(f"workload file {shown(spec.target)} {what}")
    name = module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise UsageError(f"cannot import workload file {shown(spec.target)} (not a Python source file)")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # before running it: dataclasses and pickling look the module up
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - user code: any error importing it is one line
        sys.modules.pop(name, None)
        raise UsageError(f"cannot import workload file {shown(spec.target)}: {_one_line(exc)}") from None
    return module


def classes_in(module: Any, base: type) -> list[str]:
    """Names of the ``base`` subclasses a module holds (``base`` itself left out), sorted.

    Args:
        module: An imported module.
        base: The class they must subclass.
    """
    return sorted(name for name, obj in vars(module).items()
                  if isinstance(obj, type) and issubclass(obj, base) and obj is not base and not name.startswith("_"))


def load_class(text: str, base: type) -> tuple[type, Spec]:
    """The class a spec names, checked to be a subclass of ``base``; loaded once per process.

    Args:
        text: The spec.
        base: The class it must subclass (``bench.model.workload.Workload``).

    Returns:
        ``(class, parsed spec)``.

    Raises:
        UsageError: a bad spec, a file or module that cannot be imported, no such class (naming
            the ``base`` subclasses that are there), or a class that is not a ``base``.
    """
    spec = parse_spec(text)
    if spec.text in _CLASSES:
        return _CLASSES[spec.text], spec
    module = load_module(spec)
    obj: Any = module
    for part in spec.attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            break
    there = classes_in(module, base)
    listed = f"{base.__name__} classes there: {', '.join(there)}" if there else f"it defines no {base.__name__} class"
    if obj is None:
        raise UsageError(f"no class {shown(spec.attr)} in {spec.where} ({listed})")
    if not (isinstance(obj, type) and issubclass(obj, base)) or obj is base:
        raise UsageError(f"{shown(spec.attr)} in {spec.where} is not a {base.__name__} subclass ({listed})")
    _CLASSES[spec.text] = obj
    return obj, spec


def unload(refs: Iterable[str], keep: Iterable[str] = ()) -> None:
    """Forgets what loading these specs imported: their top-level modules (a file's own module)
    and the classes remembered from them, so the next :func:`load_class` imports them afresh.

    Args:
        refs: Specs loaded in this process.
        keep: Top-level module names never dropped (the framework, xpubench itself).
    """
    roots = set()
    for ref in refs:
        spec = parse_spec(ref)
        roots.add(module_name(spec.target) if spec.is_file else spec.target.split(".")[0])
    roots -= set(keep)
    for text, cls in list(_CLASSES.items()):
        if str(getattr(cls, "__module__", "")).split(".")[0] in roots:
            del _CLASSES[text]
    for name in list(sys.modules):
        if name.split(".")[0] in roots:
            del sys.modules[name]
    importlib.invalidate_caches()


def spec_of(cls: type) -> str:
    """The spec a worker imports ``cls`` by; the class is remembered, so this process does not import it again.

    A class of a package's module is named by module (``package.module:Class``: its relative
    imports keep working); any other class defined in a file (a script, a pytest test module) by
    that file's path (``/path/test_mine.py:Class``), whatever name the file was imported under here.

    Args:
        cls: A class defined at module level.

    Raises:
        UsageError: a class defined inside a function, or one with no source file.
    """
    qualname = cls.__qualname__
    if "<locals>" in qualname:
        raise UsageError(f"workload class {shown(qualname)} is defined inside a function: define it at module level "
                         "so that a worker process can import it")
    module = sys.modules.get(cls.__module__)
    try:
        file = inspect.getsourcefile(cls) or inspect.getfile(cls)
    except (TypeError, OSError):
        file = None
    in_package = "." in cls.__module__ and not cls.__module__.startswith(MODULE_PREFIX) and getattr(module, "__package__", "")
    if in_package or (file is None and cls.__module__ != "__main__"):
        text = f"{cls.__module__}:{qualname}"
    elif file is not None:
        text = f"{Path(file).resolve()}:{qualname}"
    else:
        raise UsageError(f"workload class {shown(qualname)} has no source file a worker could import it from")
    _CLASSES.setdefault(parse_spec(text).text, cls)
    return parse_spec(text).text


def spec_file(spec: Spec) -> str | None:
    """The source file of an (imported) spec: the file itself, or the module's ``__file__``."""
    if spec.is_file:
        return spec.target
    module = sys.modules.get(spec.target)
    file = getattr(module, "__file__", None)
    return str(Path(file).resolve()) if file else None


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, in hex.

    Args:
        path: The file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["MODULE_PREFIX", "Spec", "classes_in", "file_sha256", "is_spec", "load_class", "load_module",
           "looks_like_spec", "module_name", "parse_spec", "spec_file", "spec_of", "unload"]
