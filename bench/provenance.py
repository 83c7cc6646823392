"""Where a number came from: code version, packages, machine, scheduler job."""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import socket
import subprocess
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


def provenance(device: torch.device | None) -> dict:
    """None for the device when a run failed before choosing one."""
    return {
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
