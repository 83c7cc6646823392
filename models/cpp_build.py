"""Building the compiled CPU kernels (GateLoop's recurrence, Mamba's selective scan) with torch's
cpp_extension, once per environment.

A build's name carries a hash of everything that makes a build incompatible — the source, the
flags, the torch and Python versions, where torch is installed and the CPU's instruction sets (the
flags say -march=native) — so virtual environments on one machine never rebuild each other's build,
and cluster nodes of different CPUs sharing a home folder (torch's build cache) never load each
other's; two processes building the same one at once are
serialised by torch's lock file in the build folder. Where no compiler is present the build fails
and the caller learns why; the pure-PyTorch paths are then used (and reported as such).
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
from pathlib import Path

import torch

# -fno-math-errno lets the compiler call glibc's vectorised exp (libmvec); no kernel reads errno
CFLAGS, LDFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp"), ("-fopenmp",)


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


@functools.cache
def load(source: Path):
    """(module, None) or (None, the reason it could not be built)."""
    from torch.utils import cpp_extension

    try:
        module = cpp_extension.load(name=build_name(source), sources=[str(source)], extra_cflags=list(CFLAGS),
                                    extra_ldflags=list(LDFLAGS), verbose=bool(os.environ.get("SEQBENCH_VERBOSE_BUILD")))
        return module, None
    except Exception as error:  # noqa: BLE001 — no compiler, no ninja, or a build error: all mean "not here"
        return None, f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
