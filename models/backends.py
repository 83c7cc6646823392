"""Which implementation runs a mixer's op: one set of rules for every mixer with more than one.

    torch            pure PyTorch: always there, every device, every mode
    cpp              a compiled CPU loop (models/cpp_build.py) for the mode it implements
    auto             the compiled loop where it applies and builds, an installed CUDA kernel on CUDA, else torch
    fla, mamba_ssm…  an optional CUDA package, imported only when asked for

Optional packages follow mamba-ssm's pattern: a failed import is None; the error naming the package
and its install command comes only when someone asks for that backend.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

from seqbench.core import check_choice

INSTALL = "pip install 'seqbench[cuda]'  (needs a CUDA machine; see README)"
FLA_BACKENDS = ("torch", "fla")  # mixers whose chunked mode flash-linear-attention implements
_PACKAGES = {"flash_attn": "flash-attn", "mamba_ssm": "mamba-ssm", "fla": "fla-core"}


def try_import(module: str):
    """The module, or None when it (or its compiled CUDA extension) cannot be imported."""
    try:
        return importlib.import_module(module)
    except Exception:  # noqa: BLE001 — a broken CUDA build raises ImportError, OSError or RuntimeError
        return None


def require(module: str, *, backend: str, on_device) -> object:
    """The module for `backend`, or an error naming the package, the install command and the device."""
    found = try_import(module)
    if found is None:
        package = module.split(".")[0]
        raise RuntimeError(
            f"backend {backend!r} needs the package {_PACKAGES.get(package, package)!r}, which is not importable "
            f"here; install it with: {INSTALL}. The pure-PyTorch backend works everywhere."
        )
    if on_device.type != "cuda":
        raise RuntimeError(f"backend {backend!r} runs only on CUDA tensors, got a tensor on {on_device}")
    return found


def check_backend(owner: str, backend: str, valid: tuple[str, ...]) -> str:
    check_choice(owner, "backend", backend, valid)
    return backend


def resolve_compiled(owner: str, backend: str, *, device, applies: bool, available: Callable[[], tuple[bool, str | None]],
                     cuda_module: str | None = None, cuda_backend: str | None = None) -> str:
    """The implementation `backend` means for one call: `applies` says whether the compiled loop
    implements this mode; `available()` whether it built here (and why not). 'cpp' where it cannot
    run is an error saying why; 'auto' quietly takes the best that can."""
    if backend == "torch":
        return "torch"
    if cuda_backend is not None and backend == cuda_backend:
        return cuda_backend
    if backend == "cpp":
        built, reason = available()
        if not (built and applies and device.type == "cpu"):
            raise RuntimeError(f"{owner} backend 'cpp' runs its compiled loop on CPU tensors with a working C++ compiler "
                               f"(g++ and ninja); here: device {device}, mode supported: {applies}, build: {reason or 'ok'}")
        return "cpp"
    if device.type == "cuda" and cuda_module is not None and try_import(cuda_module) is not None:
        return cuda_backend
    if device.type == "cpu" and applies and available()[0]:
        return "cpp"
    return "torch"
