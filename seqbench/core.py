"""What every layer needs and none owns: name → class registries, atomic file writes, listings.

models, tasks and bench all import from here; this module imports nothing of seqbench's, so it
sits below every package and no import ever has to run back up to reach it.
"""
from __future__ import annotations

import errno
import functools
import inspect
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

OPTION_LINE = re.compile(r"^\s+(?P<name>[a-z_][a-z0-9_]*): (?P<meaning>.+)$")


# --- registries -------------------------------------------------------------------------------
class Registry:
    """Name → class, whose options are the constructor's keyword-only arguments. Unknown names and
    options fail loudly and list the valid ones.

    Classes come from three places, each listed with its origin: the package's own (`register`),
    other installed packages through the entry-point group `entry_points` (name = "module:Class"),
    and any importable subclass of `base` named by its path, "my_package.my_module:MyMixer" — so a
    researcher benchmarks their own mixer or task without forking."""

    def __init__(self, kind: str, *, reserved: tuple[str, ...] = (), base: type | None = None, entry_points: str | None = None):
        self.kind, self.reserved = kind, reserved  # reserved: keyword arguments that are not options
        self.base, self.entry_point_group = base, entry_points
        self._classes: dict[str, type] = {}  # listed: the package's own and entry points
        self._by_path: dict[str, type] = {}  # named by import path: resolved on use, never listed
        self.origins: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str, *, origin: str = "built-in") -> Callable[[type], type]:
        def decorator(cls: type) -> type:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.registry_name = name
            self._classes[name], self.origins[name] = cls, origin
            return cls

        return decorator

    def available(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._classes)

    def get_class(self, name: str) -> type:
        if name not in self._classes:
            self._load_entry_points()
        if name not in self._classes and isinstance(name, str) and ":" in name:
            if name not in self._by_path:
                cls = self._import(name, origin=f"{self.kind} {name!r}")
                cls.registry_name = cls.__dict__.get("registry_name") or name
                self._by_path[name], self.origins[name] = cls, f"import path {name}"
            return self._by_path[name]
        if name not in self._classes:
            raise ValueError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.available())} "
                             f"(or an importable class as 'package.module:Class')")
        return self._classes[name]

    def _import(self, path: str, *, origin: str) -> type:
        """The class at 'module:Attr', checked to be a subclass of `base`; every failure says which part."""
        import importlib

        module_name, _, attribute = path.partition(":")
        if not module_name or not attribute:
            raise ValueError(f"{origin}: an import path is 'package.module:Class', got {path!r}")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # noqa: BLE001 — any import failure is the user's to see, in one line
            raise ValueError(f"{origin}: cannot import module {module_name!r} ({type(error).__name__}: {error}); it must be "
                             "importable wherever the run executes (on Slurm: on the nodes, e.g. installed in the job's "
                             "environment or on PYTHONPATH through the executor's setup lines)") from None
        found = module
        for part in attribute.split("."):
            if not hasattr(found, part):
                public = sorted(n for n in dir(module) if not n.startswith("_") and isinstance(getattr(module, n), type))
                raise ValueError(f"{origin}: module {module_name!r} has no attribute {attribute!r}; its classes: "
                                 f"{', '.join(public) or '(none)'}")
            found = getattr(found, part)
        if self.base is not None and not (isinstance(found, type) and issubclass(found, self.base)):
            what = f"class {found.__name__}" if isinstance(found, type) else type(found).__name__
            raise ValueError(f"{origin}: {path} is a {what}, not a subclass of {self.base.__module__}.{self.base.__name__}")
        return found

    def _load_entry_points(self) -> None:
        """Classes other installed packages register under `entry_point_group` (loaded once, lazily)."""
        if self._entry_points_loaded or self.entry_point_group is None:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for point in entry_points(group=self.entry_point_group):
            if point.name in self._classes:
                continue
            distribution = getattr(point.dist, "name", None) or "an installed package"
            cls = self._import(point.value, origin=f"entry point {point.name!r} of {distribution}")
            self.register(point.name, origin=f"entry point of {distribution} ({point.value})")(cls)

    def options(self, name: str) -> dict[str, Any]:
        """Options (keyword-only constructor arguments) with their defaults; required ones map to `inspect.Parameter.empty`."""
        return dict(_keyword_only(self.get_class(name), self.reserved))

    def check_options(self, name: str, given: dict[str, Any]) -> None:
        valid = self.options(name)
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for {self.kind} {name!r}; "
                f"valid options: {', '.join(sorted(valid)) or '(none)'}"
            )
        missing = sorted(k for k, v in valid.items() if v is inspect.Parameter.empty and k not in given)
        if missing:
            raise ValueError(f"{self.kind} {name!r} needs option(s): {', '.join(missing)}")

    def build(self, name: str, **kwargs: Any):
        options = {k: v for k, v in kwargs.items() if k not in self.reserved}
        self.check_options(name, options)
        return self.get_class(name)(**kwargs)

    def option_docs(self, name: str) -> dict[str, str]:
        """One line per option, from the `Options:` section of the class docstring."""
        doc = inspect.getdoc(self.get_class(name)) or ""
        section = doc.split("Options:", 1)[1] if "Options:" in doc else ""
        docs = {}
        for line in section.splitlines():
            match = OPTION_LINE.match(line)
            if match:
                docs[match["name"]] = match["meaning"].strip()
        return docs

    def describe(self) -> list[dict[str, Any]]:
        """One entry per class: name, options with defaults and meanings, docstring summary, and (for
        classes that have modes) the modes with the default one for default options."""
        rows = []
        for name in self.available():
            cls = self._classes[name]
            doc = (cls.__doc__ or "").strip().splitlines()
            row = {"name": name, "summary": doc[0] if doc else "", "options": self.options(name),
                   "option_docs": self.option_docs(name), "origin": self.origins.get(name, "built-in")}
            if hasattr(cls, "modes"):
                row.update(modes=list(cls.modes), default_mode=cls.default_mode_for({}))
            rows.append(row)
        return rows


@functools.lru_cache(maxsize=256)
def _keyword_only(cls: type, reserved: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """A class's keyword-only constructor arguments and defaults (read once per class: a sweep
    validates thousands of runs against the same few)."""
    signature = inspect.signature(cls.__init__)
    return tuple((p.name, p.default) for p in signature.parameters.values()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in reserved)


class RunStopped(RuntimeError):
    """A run that cannot go on for a reason its message states whole (another trainer holds it, its
    worker was killed): the command line says it in one line, never as a traceback."""


def check_choice(owner: str, name: str, value: Any, valid) -> None:
    """The one wording of 'unknown value' for an option with a fixed set of values."""
    if value not in valid:
        raise ValueError(f"{owner}: unknown {name} {value!r}; valid: {', '.join(map(str, valid))}")


# --- atomic writes ----------------------------------------------------------------------------
class DiskFull(OSError):
    """No space left where a file was being written; nothing was left behind."""


def atomic_write(path: Path, fill: Callable[[IO[bytes]], None]) -> None:
    """`fill(out)` writes into a temporary file unique to this process beside `path`, which is
    flushed to disk and renamed into place only when complete, so a reader (or a concurrent writer:
    a Slurm array on a fresh folder) never sees half a file, and a kill, an error or a full disk
    leaves the previous file intact and no temporary behind. Files are made readable by others
    (0644): results and corpora live in shared folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates 0600
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise DiskFull(errno.ENOSPC, f"no space left on the device holding {path.parent} while writing {path.name}; "
                           "nothing was written (the previous file, if any, is intact)") from error
        raise
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


TEMPORARY_STALE_AFTER_S = 3600  # a temporary this old belongs to a writer that died


def remove_stale_temporaries(folder: Path, older_than_s: float = TEMPORARY_STALE_AFTER_S) -> int:
    """Temporaries left by a writer killed between write and rename (atomic_write's `.NAME.*.tmp`)."""
    import time

    removed = 0
    for path in Path(folder).glob(".*.tmp") if Path(folder).is_dir() else []:
        try:
            if time.time() - path.stat().st_mtime > older_than_s:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda out: out.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float as None: strict JSON readers (jq, JavaScript) reject the
    bare NaN and Infinity tokens Python's json writes."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def atomic_write_json(path: Path, value: Any) -> None:
    text = json.dumps(strict_json(value), indent=1, sort_keys=True, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


def atomic_write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(strict_json(row), allow_nan=False) + "\n" for row in rows))


def atomic_write_csv(path: Path, frame) -> None:
    """A pandas DataFrame as CSV, atomically."""
    atomic_write_text(path, frame.to_csv(index=False))


def process_here(host: Any, pid: Any) -> bool | None:
    """Whether the process `pid` of `host` runs, when `host` is this one; None for another host
    (nothing here can tell). A lock or lease of a dead process on this host is free at once."""
    import socket

    if host != socket.gethostname() or not isinstance(pid, int) or isinstance(pid, bool):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
