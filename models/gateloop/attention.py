"""Surrogate-attention mode, O(L²): Y = ((Q̄ K̄ᵀ) ⊙ M) V with Q̄_n = q_n P_n, K̄_m = k_m / P_m.

`gateloop_attention` forms P_n / P_m from log-differences (decay.py) and works through query blocks
so the L×L decay tensor never has to fit at once. `gateloop_attention_literal` is the formula as
written — multiply by P, divide by P — kept only to show where it breaks down.
"""
from __future__ import annotations

import torch

from seqbench.models.gateloop.decay import causal_decay_scores, cumulative_log_transition, polar_decay

ELEMENTS_PER_QUERY_BLOCK = 1 << 24  # bounds the (B, block, L, H, dk) temporaries to ~64 MiB each


def gateloop_attention(q, k, v, a, initial_state, *, query_block: int | None = None):
    batch, length, heads, dk = q.shape
    real = q.dtype
    log_magnitude, phase = cumulative_log_transition(a, dim=1)
    block = query_block or max(1, ELEMENTS_PER_QUERY_BLOCK // (batch * length * heads * dk))
    positions = torch.arange(length, device=q.device)
    outputs = []
    for start in range(0, length, block):
        stop = min(start + block, length)
        causal = positions[start:stop, None] >= positions[None, :stop]
        scores = causal_decay_scores(
            q[:, start:stop], k[:, :stop],
            log_magnitude[:, start:stop], log_magnitude[:, :stop],
            phase[:, start:stop], phase[:, :stop], causal,
        )
        outputs.append(torch.einsum("bnmh,bmhv->bnhv", scores, v[:, :stop]))
    y = torch.cat(outputs, dim=1)

    complex_dtype = a.dtype
    to_end = polar_decay(log_magnitude[:, -1:] - log_magnitude, phase[:, -1:] - phase, real)
    final_state = torch.einsum("bmhk,bmhv->bhkv", to_end * k, v.to(complex_dtype))
    if initial_state is not None:
        from_start = polar_decay(log_magnitude, phase, real)
        y = y + torch.einsum("bnhk,bhkv->bnhv", q * from_start, initial_state).real
        final_state = final_state + from_start[:, -1].unsqueeze(-1) * initial_state
    return y, final_state


def gateloop_attention_literal(q, k, v, a, initial_state):
    """The paper's formula verbatim; overflows once |P_m| underflows (see tests/models/test_gateloop_ops.py)."""
    length = q.shape[1]
    cumulative = torch.cumprod(a, dim=1)
    q_bar, k_bar = q * cumulative, k / cumulative
    causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    scores = torch.einsum("bnhk,bmhk->bnmh", q_bar, k_bar).real  # plain transpose, no conjugate
    scores = scores.masked_fill(~causal[:, :, None], 0.0)
    y = torch.einsum("bnmh,bmhv->bnhv", scores, v)
    carried = torch.einsum("bmhk,bmhv->bhkv", k_bar, v.to(a.dtype))
    if initial_state is not None:
        y = y + torch.einsum("bnhk,bhkv->bnhv", q_bar, initial_state).real
        carried = carried + initial_state
    return y, cumulative[:, -1].unsqueeze(-1) * carried
