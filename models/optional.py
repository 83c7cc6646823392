"""Optional CUDA backends, imported lazily: a missing package is None until someone asks for it."""
from __future__ import annotations

import importlib

INSTALL = "pip install 'seqbench[cuda]'  (needs a CUDA machine; see README)"
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
