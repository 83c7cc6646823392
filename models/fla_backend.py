"""flash-linear-attention's `chunk_simple_gla` as an optional CUDA backend (package fla-core).

The kernel computes, for q, k (B, T, H, K), v (B, T, H, V) and a per-head log-decay g (B, T, H) or
a fixed g_gamma (H,):

    o_n = scale · Σ_{m≤n} e^{G_n − G_m} ⟨q_n, k_m⟩ v_m,   G_n = Σ_{j≤n} g_j,   final state Σ_m e^{G_T − G_m} k_mᵀ v_m

which is GateLoop after the rotation (models/gateloop/rotated.py), RetNet's retention (g_gamma =
log γ) and the numerator and denominator of linear attention (no decay). Imported only when a
layer with backend="fla" runs; without the package the error names it and the install command.
"""
from __future__ import annotations

import torch

from seqbench.models.backends import require

MODULE = "fla.ops.simple_gla"


def simple_gla(q, k, v, *, g=None, g_gamma=None, initial_state=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(o, final state (B, H, K, V)) with scale 1: each caller scales its own q or k."""
    kernel = require(MODULE, backend="fla", on_device=q.device).chunk_simple_gla
    return kernel(q, k, v, g=g, g_gamma=g_gamma, scale=1.0, initial_state=initial_state, output_final_state=True)


GLA_MODULE = "fla.ops.gla"


def chunk_gla(q, k, v, log_gate, initial_state=None) -> tuple[torch.Tensor, torch.Tensor]:
    """GLA's chunk kernel on q (already scaled), k, log gates (B, T, H, K), v (B, T, H, V): (o, final state)."""
    kernel = require(GLA_MODULE, backend="fla", on_device=q.device).chunk_gla
    return kernel(q, k, v, g=log_gate, scale=1.0, initial_state=initial_state, output_final_state=True)


DELTA_MODULE = "fla.ops.gated_delta_rule"


def chunk_gated_delta_rule(q, k, v, beta, log_decay, initial_state=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The gated delta rule's chunk kernel on q (already scaled and L2-normalised), k (L2-normalised)
    (B, T, H, K), v (B, T, H, V), β and log α (B, T, H): (o, final state)."""
    kernel = require(DELTA_MODULE, backend="fla", on_device=q.device).chunk_gated_delta_rule
    return kernel(q, k, v, g=log_decay, beta=beta, scale=1.0, initial_state=initial_state, output_final_state=True)


RWKV7_MODULE = "fla.ops.rwkv7"


def chunk_rwkv7(r, log_decay, k, v, a, b, initial_state=None) -> tuple[torch.Tensor, torch.Tensor]:
    """RWKV-7's chunk kernel: r, log w, k, a = −κ̂, b = κ̂ ⊙ a_rate (B, T, H, K), v (B, T, H, V): (o, final state)."""
    kernel = require(RWKV7_MODULE, backend="fla", on_device=r.device).chunk_rwkv7
    return kernel(r=r, w=log_decay, k=k, v=v, a=a, b=b, scale=1.0, initial_state=initial_state, output_final_state=True)
