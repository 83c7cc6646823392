"""delta_rule(q, k, v, beta, log_decay, *, mode, chunk_size, initial_state) → (o, final state): the
gated delta rule in every mode behind one call, each tested against reference.py (outputs, final
state, gradients) at odd lengths and several chunk sizes.

    S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,    o_t = S_tᵀ q_t

    recurrent   the rule as an update: S ← α S; u = β (v − Sᵀk); S ← S + k uᵀ (L sequential steps)
    chunked     the WY / UT form (arXiv 2406.06484 §3, with the gate of arXiv 2412.06464 §3): inside a
                chunk of C tokens, with Γ_t the cumulative decay from the chunk's start,
                    u_t + β_t Σ_{s<t} (Γ_t/Γ_s) (k_t·k_s) u_s = β_t v_t − β_t Γ_t S₀ᵀ k_t,
                one unit-lower-triangular solve (I + A) U = B for the chunk's corrected values u; then
                    o_t = Γ_t S₀ᵀ q_t + Σ_{s≤t} (Γ_t/Γ_s) (q_t·k_s) u_s,   S_C = Γ_C S₀ + Σ_s (Γ_C/Γ_s) k_s u_sᵀ.
                Every decay ratio is exp of a difference ≤ 0: no overflow whatever the gates.

Shapes: q, k (B, L, H, K) — q carries its own scale; v (B, L, H, V); beta, log_decay (B, L, H);
state (B, H, K, V).
"""
from __future__ import annotations

import torch

from seqbench.models.gla.ops import in_chunks

MODES = ("recurrent", "chunked")


def solve_unit_lower(system: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """(I + A)⁻¹ B for the unit-lower-triangular systems of the delta rules' chunked forms, solved as
    Uᵀ (I + A)ᵀ = Bᵀ: the same solve, about twice as fast in torch's batched CPU path (its backward too)."""
    return torch.linalg.solve_triangular(system.mT, right.mT, upper=True, left=False, unitriangular=True).mT


def chunk_by_chunk(*tensors: torch.Tensor):
    """(B, N, …) tensors as N slices each, chunk-major and contiguous: the carry loop's matmuls then read
    dense batches of matrices (strided slices make CPU bmm copy matrix by matrix, forward and backward)."""
    return tuple(t.movedim(1, 0).contiguous().unbind(0) for t in tensors)


def delta_rule_recurrent(q, k, v, beta, log_decay, state):
    outputs = []
    for t in range(q.shape[1]):
        state = state * log_decay[:, t].exp()[..., None, None]
        k_t = k[:, t]
        correction = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhkv,bhk->bhv", state, k_t))
        state = state + k_t.unsqueeze(-1) * correction.unsqueeze(-2)
        outputs.append(torch.einsum("bhkv,bhk->bhv", state, q[:, t]))
    return torch.stack(outputs, 1), state


def delta_rule_chunked(q, k, v, beta, log_decay, state, chunk_size: int):
    """Every chunk's own part at once (batched over chunks: the solve, the decay ratios, q·k); the
    state then carried chunk to chunk, where u = Ũ − W S₀ needs it."""
    length, values = q.shape[1], v.shape[-1]
    qc, kc, vc = (in_chunks(t, chunk_size).transpose(2, 3) for t in (q, k, v))  # (B, N, H, C, ·)
    bc, gc = (in_chunks(t, chunk_size).transpose(2, 3) for t in (beta, log_decay))  # (B, N, H, C)
    cumulative = gc.cumsum(-1)  # log Γ_t
    size = qc.shape[-2]
    inclusive = torch.ones(size, size, dtype=torch.bool, device=q.device).tril()
    ratio = torch.where(inclusive, cumulative[..., :, None] - cumulative[..., None, :], float("-inf")).exp()  # Γ_t/Γ_s, s ≤ t
    system = torch.eye(size, dtype=q.dtype, device=q.device) + bc[..., :, None] * ratio.tril(-1) * (kc @ kc.transpose(-1, -2))
    right = torch.cat([bc[..., None] * vc, (bc * cumulative.exp())[..., None] * kc], dim=-1)
    solved = solve_unit_lower(system, right)
    corrected_values, correction_keys = solved[..., :values], solved[..., values:]  # Ũ, W
    scores = ratio * (qc @ kc.transpose(-1, -2))
    decayed_q = qc * cumulative.exp()[..., None]
    end_keys = (kc * (cumulative[..., -1:] - cumulative).exp()[..., None]).transpose(-1, -2)  # (Γ_C/Γ_s) k_s
    chunk_decay = cumulative[..., -1].exp()[..., None, None]
    outputs = []
    for u_tilde, w, p, dq, ek, decay in zip(*chunk_by_chunk(corrected_values, correction_keys, scores, decayed_q, end_keys,
                                                            chunk_decay)):
        corrected = u_tilde - w @ state  # u = Ũ − W S₀
        outputs.append(dq @ state + p @ corrected)
        state = state * decay + ek @ corrected
    return torch.stack(outputs, 1).transpose(2, 3).flatten(1, 2)[:, :length], state


def delta_rule(q, k, v, beta, log_decay, *, mode: str = "chunked", chunk_size: int = 32, initial_state=None):
    if mode not in MODES:
        raise ValueError(f"unknown delta rule mode {mode!r}; valid modes: {', '.join(MODES)}")
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[3]) if initial_state is None else initial_state
    if mode == "recurrent":
        return delta_rule_recurrent(q, k, v, beta, log_decay, state)
    return delta_rule_chunked(q, k, v, beta, log_decay, state, chunk_size)
