"""The per-channel chunked op (mode "chunked_per_channel"): a transition per channel, so surrogate
attention inside chunks of C positions with a decay per channel, the recurrence across chunks; the
layer never runs it (its transition is one per head: rotated.py).

O(L·C) work; the inter-chunk pass is a linear recurrence over L/C chunk states. Decays are formed
from chunk-local log-transitions (decay.py), so nothing overflows whatever L is.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from seqbench.models.gateloop.decay import causal_decay_scores, cumulative_log_transition, polar_decay
from seqbench.models.scan import linear_recurrence


def gateloop_chunked_per_channel(q, k, v, a, initial_state, *, chunk_size: int = 64):
    batch, length, heads, dk = q.shape
    dv = v.shape[-1]
    real, complex_dtype = q.dtype, a.dtype
    padding = (-length) % chunk_size
    if padding:  # a = 1, k = 0 after the end: the state passes through unchanged
        q, k, v = (F.pad(t, (0, 0, 0, 0, 0, padding)) for t in (q, k, v))
        a = torch.cat([a, torch.ones_like(a[:, :1]).expand(-1, padding, -1, -1)], dim=1)
    chunks = (length + padding) // chunk_size
    q, k, v, a = (t.reshape(batch, chunks, chunk_size, heads, t.shape[-1]) for t in (q, k, v, a))

    log_magnitude, phase = cumulative_log_transition(a, dim=2)
    positions = torch.arange(chunk_size, device=q.device)
    causal = positions[:, None] >= positions[None, :]
    scores = causal_decay_scores(q, k, log_magnitude, log_magnitude, phase, phase, causal)
    y = torch.einsum("bcnmh,bcmhv->bcnhv", scores, v)

    to_end = polar_decay(log_magnitude[:, :, -1:] - log_magnitude, phase[:, :, -1:] - phase, real)
    chunk_inputs = torch.einsum("bcmhk,bcmhv->bchkv", to_end * k, v.to(complex_dtype))
    chunk_decay = polar_decay(log_magnitude[:, :, -1], phase[:, :, -1], real)
    end_states = linear_recurrence(chunk_decay.unsqueeze(-1), chunk_inputs, initial_state, method="sequential")

    if initial_state is None:
        initial_state = torch.zeros(batch, heads, dk, dv, dtype=complex_dtype, device=q.device)
    start_states = torch.cat([initial_state.unsqueeze(1), end_states[:, :-1]], dim=1)
    from_start = polar_decay(log_magnitude, phase, real)
    y = y + torch.einsum("bcnhk,bchkv->bcnhv", q * from_start, start_states).real
    return y.reshape(batch, chunks * chunk_size, heads, dv)[:, :length], end_states[:, -1]
