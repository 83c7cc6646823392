"""Mamba's selective scan compiled for the CPU (cpu_kernel.cpp beside this file), with its own backward.

    h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t u_t B_tᵀ,   y_t = h_t C_t + D ⊙ u_t      (per channel: N states)

The PyTorch scan materialises (B, L, D, N) tensors for the decays, inputs and states; this loop
keeps one channel block's state in cache and walks time, and its backward recomputes states per
chunk from checkpoints. Built once per environment (models/cpp_build.py); `available()` says why
not where it cannot be built, and Mamba's backend "auto" then uses PyTorch.
"""
from __future__ import annotations

from pathlib import Path

import torch

from seqbench.models import cpp_build

SOURCE = Path(__file__).with_name("cpu_kernel.cpp")
CHECKPOINT_CHUNK = 64


def available() -> tuple[bool, str | None]:
    module, reason = cpp_build.load(SOURCE)
    return module is not None, reason


class _SelectiveScanCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, Bm, C, skip):
        module, _ = cpp_build.load(SOURCE)
        u, dt, A, Bm, C, skip = (t.contiguous() for t in (u, dt, A, Bm, C, skip))
        y, final_state, checkpoints = module.forward(u, dt, A, Bm, C, skip, CHECKPOINT_CHUNK)
        ctx.save_for_backward(u, dt, A, Bm, C, skip, checkpoints)
        return y, final_state

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y, grad_final):
        module, _ = cpp_build.load(SOURCE)
        u, dt, A, Bm, C, skip, checkpoints = ctx.saved_tensors
        grad_y = torch.zeros_like(u) if grad_y is None else grad_y.contiguous()
        grad_final = None if grad_final is None else grad_final.contiguous()
        return tuple(module.backward(grad_y, grad_final, u, dt, A, Bm, C, skip, checkpoints, CHECKPOINT_CHUNK))


def selective_scan_cpp(u, dt, A, Bm, C, skip):
    """(y (B, L, D), final state (B, D, N)) for CPU float32/float64 tensors: u, dt (B, L, D); A (D, N);
    Bm, C (B, L, N); skip (D)."""
    return _SelectiveScanCPU.apply(u, dt, A, Bm, C, skip)
