"""Building the compiled CPU kernels (GateLoop's recurrence, Mamba's selective scan) with torch's
cpp_extension, once per environment, so that a build can never hang a job array.

A build's name carries a hash of everything that makes a build incompatible — the source, the
flags, the torch and Python versions, where torch is installed and the CPU's instruction sets (the
flags say -march=native) — so virtual environments on one machine never rebuild each other's build,
and cluster nodes of different CPUs sharing a home folder never load each other's. Each build lives
in its own folder under `build_root()`:

    build.lock     held while one process builds: created exclusively; a lock left by a process that
                   died (SIGKILL of a preempted job) is taken over at once on its host, and by anyone
                   once it has not changed for LOCK_STALE_S; waiting for a live builder gives up after
                   BUILD_WAIT_S with the reason, and the caller falls back to PyTorch
    build.log      the compiler's whole output of the last build
    failed.json    a build that failed, with its reason: later processes fall back at once instead of
                   compiling again (`seqbench build --force` retries)

torch's own `lock` file in the folder (which a killed build leaves, and on which torch waits
forever) is removed while `build.lock` is held, so nothing else can be building there. Where no
compiler is present, the reason says so in one line and the pure-PyTorch paths are used (and
reported as such in every run's provenance).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import sys
import time
import warnings
from pathlib import Path

import torch

from seqbench.core import atomic_write_json, process_here

# -fno-math-errno lets the compiler call glibc's vectorised exp (libmvec); no kernel reads errno
CFLAGS, LDFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp"), ("-fopenmp",)
BUILD_ROOT_ENV = "SEQBENCH_BUILD_DIR"
BUILD_WAIT_S = float(os.environ.get("SEQBENCH_BUILD_WAIT_S", 900))
LOCK_STALE_S = float(os.environ.get("SEQBENCH_BUILD_LOCK_STALE_S", 1200))
POLL_S = 0.5


def cpu_instruction_sets() -> str:
    """The CPU's feature flags (Linux: /proc/cpuinfo's x86 `flags` or ARM `Features`), else its name."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    flags = [line.split(":", 1)[1] for line in lines if line.startswith(("flags", "Features")) and ":" in line]
    return " ".join(sorted(flags[0].split())) if flags else platform.processor()


def build_name(source: Path) -> str:
    """The extension's name: fixed by the source, by what the build links against and the CPU it targets."""
    key = "\n".join([source.read_text(), " ".join(CFLAGS + LDFLAGS), torch.__version__, str(Path(torch.__file__).parent),
                     platform.python_version(), platform.machine(), cpu_instruction_sets()])
    return f"seqbench_{source.parent.name}_{source.stem}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def build_root() -> Path:
    """$SEQBENCH_BUILD_DIR, else seqbench's cache ($XDG_CACHE_HOME or ~/.cache, then seqbench/kernels):
    on a cluster a home folder the nodes share, so one node's build serves the array."""
    if os.environ.get(BUILD_ROOT_ENV):
        return Path(os.environ[BUILD_ROOT_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "seqbench" / "kernels"


def build_folder(source: Path) -> Path:
    return build_root() / build_name(source)


def missing_tools() -> str | None:
    """Why no build can start here, in one line; None when a compiler and ninja are present."""
    compiler = os.environ.get("CXX") or next((c for c in ("c++", "g++") if shutil.which(c)), None)
    if compiler is None or shutil.which(compiler.split()[0]) is None:
        return "no C++ compiler (c++/g++) on PATH — using PyTorch"
    from torch.utils import cpp_extension

    if not cpp_extension.is_ninja_available():
        return "no ninja on PATH (pip install ninja) — using PyTorch"
    return None


_OUTCOMES: dict[str, str] = {}  # build name → "built" or why not, for each kernel this process asked for


@functools.cache
def load(source: Path):
    """(module, None) or (None, the reason it could not be built), never waiting longer than
    BUILD_WAIT_S for another process's build. A kernel that cannot be had warns once, with the
    reason; the caller falls back to PyTorch."""
    module, reason = build(source)
    _OUTCOMES[build_name(source)] = "built" if module is not None else reason
    if module is None:
        warnings.warn(f"compiled kernel {source.parent.name}/{source.name} unavailable: {reason}", stacklevel=3)
    return module, reason


def outcomes() -> dict[str, str]:
    """Each kernel this process asked for: "built", or why it could not be (a run's provenance)."""
    return dict(_OUTCOMES)


def build(source: Path, *, force: bool = False):
    """Build (or load the finished build of) `source`; `force` retries a build recorded as failed."""
    missing = missing_tools()
    if missing:
        return None, missing
    folder = build_folder(source)
    with contextlib.suppress(OSError):  # a read-only build root: what is there may still be loaded
        folder.mkdir(parents=True, exist_ok=True)
    failed = folder / "failed.json"
    if failed.exists() and not force:
        return None, _failure_reason(failed)
    if not _writable(folder):
        module = _load_complete(folder)
        return (module, None) if module is not None else \
            (None, f"the build folder {folder} cannot be written and holds no complete build: using PyTorch")
    try:
        with _build_lock(folder / "build.lock"):
            Path(folder / "lock").unlink(missing_ok=True)  # torch's, left by a killed build: nobody else is building
            if failed.exists() and not force:
                return None, _failure_reason(failed)  # another process failed while we waited
            failed.unlink(missing_ok=True)
            return _compile(source, folder)
    except TimeoutError as error:
        return None, str(error)


def _compile(source: Path, folder: Path):
    from torch.utils import cpp_extension

    log = folder / "build.log"
    try:
        with _output_to(log):
            module = cpp_extension.load(name=folder.name, sources=[str(source)], extra_cflags=list(CFLAGS),
                                        extra_ldflags=list(LDFLAGS), build_directory=str(folder), verbose=True)
        return module, None
    except Exception as error:  # noqa: BLE001 — a compiler or link error: recorded, and PyTorch is used
        last = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        status = _killed_by(error) or _signal_in_log(log)
        if status is not None:  # a timeout or a preemption, not the source: the next process builds again
            return None, f"build interrupted by a signal ({status}; not recorded as failed); compiler log: {log}"
        reason = f"build failed ({type(error).__name__}: {last}); compiler log: {log}"
        atomic_write_json(folder / "failed.json", {"reason": reason, "log": str(log), "when": time.time()})
        return None, reason


def _killed_by(error: BaseException) -> str | None:
    """How a signal ended the compiler (its exit status anywhere in the error's chain), if one did."""
    seen: BaseException | None = error
    while seen is not None:
        code = getattr(seen, "returncode", None)
        if isinstance(code, int) and code < 0:
            return f"killed by signal {-code}"
        if isinstance(code, int) and 128 < code < 160:  # 128 + N: how ninja and shells report a signal
            return f"exit status {code}"
        seen = seen.__cause__ or seen.__context__
    return None


# What a compile ended by a signal leaves in the log when the exit status does not show it: a group-wide
# SIGTERM can reach the compiler before ninja, which then reports an ordinary failure (exit status 1).
SIGNAL_MARKS = (
    re.compile(r"signal terminated program"),  # gcc/clang's driver: its cc1plus died of a signal
    re.compile(r"ninja: build stopped: interrupted by user"),  # ninja itself got SIGINT, SIGTERM or SIGHUP
    re.compile(r"FAILED: \[code=(129|1[3-5][0-9])\]"),  # ninja: a command's exit status 128 + N
)


def _signal_in_log(log: Path) -> str | None:
    """The compiler log's own evidence of a signal ("compiler log says: …"), if any."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    for mark in SIGNAL_MARKS:
        found = mark.search(text)
        if found:
            return f"compiler log says: {found.group(0)!r}"
    return None


def _writable(folder: Path) -> bool:
    """Whether a lock can be made in `folder` (a read-only mount refuses even root)."""
    probe = folder / f".probe-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
        return True
    except OSError:
        return False


def _load_complete(folder: Path):
    """A finished build in `folder` (torch names it <folder name>.so), loaded without writing
    anything — all a read-only folder allows; None where there is none."""
    import importlib.util

    built = folder / f"{folder.name}.so"
    if not built.is_file():
        return None
    spec = importlib.util.spec_from_file_location(folder.name, built)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _failure_reason(failed: Path) -> str:
    try:
        recorded = json.loads(failed.read_text())["reason"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = "an earlier build failed"
    return f"{recorded} (recorded in {failed}; `seqbench build --force` retries)"


@contextlib.contextmanager
def _output_to(log: Path):
    """The compiler's output (ninja and its children write to file descriptors 1 and 2) into `log`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "wb") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for handle in saved:
                os.close(handle)


@contextlib.contextmanager
def _build_lock(path: Path):
    """Exclusive right to build in a folder; see the module docstring for how a dead holder's lock
    is recovered and how long a live one is waited for."""
    deadline, watched, since = time.monotonic() + BUILD_WAIT_S, None, time.monotonic()
    record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
    while True:
        with contextlib.suppress(FileExistsError):  # held: look at who holds it below
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        holder = _holder(text)
        now = time.monotonic()
        if text != watched:
            watched, since = text, now
        if _dead_here(holder) or now - since > LOCK_STALE_S:
            with contextlib.suppress(FileNotFoundError):
                if path.read_text() == text:
                    path.unlink()
            continue
        if now >= deadline:
            raise TimeoutError(f"waited {BUILD_WAIT_S:.0f} s for the build in {path.parent} by "
                               f"{holder.get('host', '?')}:{holder.get('pid', '?')} — using PyTorch")
        time.sleep(POLL_S)
    with os.fdopen(handle, "w") as out:
        out.write(record)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == record:
                path.unlink()


def _holder(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _dead_here(holder: dict) -> bool:
    return process_here(holder.get("host"), holder.get("pid")) is False
