"""Where a number came from: code version, packages, machine, scheduler job."""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import inspect
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

from seqbench.models import cpp_build

PACKAGES = ("torch", "numpy", "pandas", "submitit", "pydantic", "einops", "seqbench")
# what a job's setup lines (module load, conda activate) and the scheduler leave in the environment
ENVIRONMENT = ("LOADEDMODULES", "CONDA_DEFAULT_ENV", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
               "SLURM_JOB_PARTITION", "SLURM_CPUS_PER_TASK")
SOURCE = Path(__file__).resolve().parent.parent


def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10)

    try:
        commit = git("rev-parse", "HEAD")
        if commit.returncode:
            return {"commit": None, "dirty": None}
        return {"commit": commit.stdout.strip(), "dirty": bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):  # no /proc (not Linux): fall back to what platform knows
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} logical CPUs)"
    return platform.processor() or platform.machine()


def slurm_job_id() -> str | None:
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return os.environ.get("SLURM_JOB_ID")


def code_identity(config) -> dict[str, str]:
    """name → sha256 of its module's source, for every mixer and task a run names by import path
    ("my_package.my_module:MyMixer"): code outside seqbench's commit, so that an edit to it is seen
    (a relaunch compares this with what a finished run recorded). Built-ins are the commit's."""
    from seqbench import tasks
    from seqbench.models import registry

    names = getattr(getattr(config, "model", None), "name", None)
    mixers = [] if names is None else [names] if isinstance(names, str) else list(names)
    found = {}
    for kind, name in [*(("mixer", n) for n in mixers), ("task", getattr(getattr(config, "task", None), "name", None))]:
        if not isinstance(name, str) or ":" not in name:
            continue
        cls = (registry.get_class if kind == "mixer" else tasks.TASKS.get_class)(name)
        try:
            found[name] = hashlib.sha256(Path(inspect.getsourcefile(cls)).read_bytes()).hexdigest()
        except (TypeError, OSError):  # no source file (a compiled or built-in module): its version, where it has one
            found[name] = f"version {getattr(sys.modules.get(cls.__module__), '__version__', 'unknown')}"
    return found


def provenance(device: torch.device | None, config=None) -> dict:
    """None for the device when a run failed before choosing one; `config` adds the source hashes of
    the mixers and tasks it names by import path (`code`)."""
    return {
        **({"code": code_identity(config)} if config is not None else {}),
        **git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "device": str(device) if device else None,
        "device_name": device_name(device) if device else None,
        "torch_threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "slurm_job_id": slurm_job_id(),
        "kernels": cpp_build.outcomes(),  # "built", or why a layer's backend fell back to PyTorch
        "environment": {name: os.environ[name] for name in ENVIRONMENT if name in os.environ},
    }
