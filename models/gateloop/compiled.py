"""The compiled CPU path of GateLoop's recurrent mode: cpu_kernel.cpp, built once per environment
(models/cpp_build.py), with its own backward. Where it cannot be built, `available()` says why and
backend "auto" uses the pure-PyTorch loop (and reports that it did).
"""
from __future__ import annotations

from pathlib import Path

import torch

from seqbench.models import cpp_build

SOURCE = Path(__file__).with_name("cpu_kernel.cpp")
CHECKPOINT_CHUNK = 64
# matrix-state rows by AVX-512 intrinsics where the build has them (has_avx512), else the portable loop;
# False forces the portable loop (the tests run both)
VECTORISED = True


def _load():
    return cpp_build.load(SOURCE)


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
            q, k, v, a_pairs, torch.view_as_real(initial_state.resolve_conj().contiguous()), CHECKPOINT_CHUNK,
            VECTORISED)
        ctx.vectorised = VECTORISED
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
            grad_y, grad_final, q, k, v, a_pairs, checkpoints, CHECKPOINT_CHUNK, ctx.vectorised)
        return grad_q, grad_k, grad_v, torch.view_as_complex(grad_a), torch.view_as_complex(grad_h0)


def gateloop_recurrent_cpp(q, k, v, a, initial_state):
    """Same contract as recurrent.gateloop_recurrent; CPU tensors only."""
    return _GateLoopCPU.apply(q, k, v, a, initial_state)


class _SigmoidOfModulusCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, first, second):
        module, _ = _load()
        ctx.save_for_backward(first, second)
        return torch.view_as_complex(module.transition_forward(first, second)[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_a):
        module, _ = _load()
        return tuple(module.transition_backward(torch.view_as_real(grad_a.resolve_conj()), *ctx.saved_tensors))


def sigmoid_of_modulus_cpp(first, second):
    """a = σ(|z|)·z/|z| (½ at z = 0) for z = first + i·second, complex; CPU tensors, one pass each way."""
    return _SigmoidOfModulusCPU.apply(first, second)
