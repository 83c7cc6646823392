"""The compiled CPU path of GateLoop's recurrent mode: cpu_kernel.cpp, built once by torch's
cpp_extension (cached under torch's extensions directory), with its own backward.

The extension is built on first use. Where no compiler is present the build fails, `available()`
says so with the reason, and backend "auto" uses the pure-PyTorch loop (and reports that it did).

The build's name carries a hash of everything that makes a build incompatible — the source, the
flags, the torch and Python versions and where torch is installed — so virtual environments on
one machine never rebuild each other's build; two processes building the same one at once are
serialised by torch's lock file in the build folder.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("cpu_kernel.cpp")
CHECKPOINT_CHUNK = 64
CFLAGS, LDFLAGS = ("-O3", "-march=native", "-fopenmp"), ("-fopenmp",)


def build_name(source: Path = SOURCE) -> str:
    """The extension's name: fixed by the source and by what the build links against."""
    key = "\n".join([source.read_text(), " ".join(CFLAGS + LDFLAGS), torch.__version__, str(Path(torch.__file__).parent),
                     platform.python_version(), platform.machine()])
    return f"seqbench_{source.stem}_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@functools.lru_cache(maxsize=1)
def _load():
    """(module, None) or (None, the reason it could not be built)."""
    from torch.utils import cpp_extension

    try:
        module = cpp_extension.load(
            name=build_name(),
            sources=[str(SOURCE)],
            extra_cflags=list(CFLAGS),
            extra_ldflags=list(LDFLAGS),
            verbose=bool(os.environ.get("SEQBENCH_VERBOSE_BUILD")),
        )
        return module, None
    except Exception as error:  # noqa: BLE001 — no compiler, no ninja, or a build error: all mean "not here"
        return None, f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"


def available() -> tuple[bool, str | None]:
    module, reason = _load()
    return module is not None, reason


class _GateLoopCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, a, initial_state):
        module, _ = _load()
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        a_pairs = torch.view_as_real(a.resolve_conj().contiguous())
        y, final_state, checkpoints = module.forward(
            q, k, v, a_pairs, torch.view_as_real(initial_state.resolve_conj().contiguous()), CHECKPOINT_CHUNK)
        ctx.save_for_backward(q, k, v, a_pairs, checkpoints)
        return y, torch.view_as_complex(final_state)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y, grad_final):
        module, _ = _load()
        q, k, v, a_pairs, checkpoints = ctx.saved_tensors
        grad_y = torch.zeros_like(ctx.saved_tensors[2]) if grad_y is None else grad_y.contiguous()
        final_shape = (q.shape[0], q.shape[2], q.shape[3], v.shape[3], 2)
        grad_final = (torch.zeros(final_shape, dtype=q.dtype) if grad_final is None
                      else torch.view_as_real(grad_final.resolve_conj().contiguous()))
        grad_q, grad_k, grad_v, grad_a, grad_h0 = module.backward(
            grad_y, grad_final, q, k, v, a_pairs, checkpoints, CHECKPOINT_CHUNK)
        return grad_q, grad_k, grad_v, torch.view_as_complex(grad_a), torch.view_as_complex(grad_h0)


def gateloop_recurrent_cpp(q, k, v, a, initial_state):
    """Same contract as recurrent.gateloop_recurrent; CPU tensors only."""
    return _GateLoopCPU.apply(q, k, v, a, initial_state)
