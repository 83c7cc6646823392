"""gated_linear_attention(q, k, v, log_decay, *, mode, chunk_size, initial_state) → (o, final state):
the recurrence of every gated linear-attention mixer here, behind one call, each mode tested against
reference.py (outputs, final state, gradients) at odd lengths and several chunk sizes.

    S_t = diag(exp(g_t)) S_{t−1} + k_tᵀ v_t,    o_t = q_t S_t        (per head: S is d_k × d_v)

g_t ≤ 0 is the log decay, per key channel (GLA: (B, L, H, K)) or one per head broadcast over the
keys (Mamba-2's SSD: (B, L, H, 1)) — one recurrence, the state-space duality of arXiv 2405.21060.

    recurrent   the loop above: L sequential steps of O(K·V) each
    chunked     chunks of C tokens: inside a chunk a masked C × C attention whose weights carry the
                decay between two positions, exp(G_t − G_s) per key channel (G the cumulative log decay
                inside the chunk), as one matmul of e^{G}-scaled q and e^{−G}-scaled k while a chunk's
                decay stays within FACTORED_LOG_SPAN (models/scan.py), else pairwise — exponents ≤ 0 only, so no gate,
                however small, overflows it; across chunks the state, carried as in the recurrence.

Shapes: q, k (B, L, H, K) or (B, L, 1, K), one head broadcast to all (Mamba-2's shared B, C); v (B, L, H, V);
state (B, H, K, V). q carries its own scale.
"""
from __future__ import annotations

import torch

from seqbench.models.scan import FACTORED_LOG_SPAN

MODES = ("recurrent", "chunked")


def gla_recurrent(q, k, v, log_decay, state):
    outputs = []
    for t in range(q.shape[1]):
        state = state * log_decay[:, t].exp().unsqueeze(-1) + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], state))
    return torch.stack(outputs, 1), state


def in_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(B, L, …) → (B, N, C, …), the length padded with zeros to N·C: a zero key and value add nothing
    to the state and a zero log decay keeps it, so padding changes no real position's output."""
    pad = -x.shape[1] % chunk_size
    if pad:
        x = torch.cat([x, x.new_zeros(x.shape[0], pad, *x.shape[2:])], dim=1)
    return x.unflatten(1, (-1, chunk_size))


def decayed_products(x, y, log_x, log_y, mask):
    """[t, s] = Σ_d x_{t,d} y_{s,d} e^{log_x[t,d] − log_y[s,d]} where `mask` (C × C) holds, 0 elsewhere:
    (…, C, K) inputs → (…, C, C). The masked-in exponents are ≤ 0 (s no later than t)."""
    # the one-matmul form while every chunk-local |G| < FACTORED_LOG_SPAN (models/scan.py); meta tensors have no values
    if log_y.device.type == "meta" or bool(log_y.amin() > -FACTORED_LOG_SPAN[log_y.dtype]):
        return torch.where(mask, (x * log_x.exp()) @ (y * (-log_y).exp()).transpose(-1, -2), 0.0)
    between = torch.where(mask[..., None], log_x[..., :, None, :] - log_y[..., None, :, :], float("-inf")).exp()
    return torch.einsum("...tk,...sk,...tsk->...ts", x, y, between)


def gla_chunked(q, k, v, log_decay, state, chunk_size: int):
    """Every chunk's own part at once (batched over chunks); the state then carried chunk to chunk."""
    length = q.shape[1]
    qc, kc, vc, gc = (in_chunks(t, chunk_size).transpose(2, 3) for t in (q, k, v, log_decay))  # (B, N, H, C, ·)
    cumulative = gc.cumsum(-2)  # G_t inside each chunk
    size = qc.shape[-2]
    causal = torch.ones(size, size, dtype=torch.bool, device=q.device).tril()
    to_end = (cumulative[..., -1:, :] - cumulative).exp()  # exp(G_C − G_s) ≤ 1
    per_key = log_decay.shape[-1] > 1
    if per_key:  # a decay per key channel
        scores = decayed_products(qc, kc, cumulative, cumulative, causal)
        added = (kc * to_end).transpose(-1, -2) @ vc  # each chunk's own contribution to the state (B, N, H, K, V)
    else:  # one per head: the decay factors out of every key sum, so it scales values and outputs, never a shared key
        between = torch.where(causal, cumulative[..., 0, None] - cumulative[..., None, :, 0], float("-inf")).exp()
        scores = (qc @ kc.transpose(-1, -2)) * between
        added = kc.transpose(-1, -2) @ (vc * to_end)
    within = scores @ vc
    chunk_decay = cumulative[..., -1, :].exp().unsqueeze(-1)  # (B, N, H, K or 1, 1)
    starts = []
    for decay, contribution in zip(chunk_decay.unbind(1), added.unbind(1)):  # unbind: one gradient stack, not N zero-filled copies
        starts.append(state)
        state = state * decay + contribution
    starts = torch.stack(starts, 1)
    carried = (qc * cumulative.exp()) @ starts if per_key else (qc @ starts) * cumulative.exp()
    return (within + carried).transpose(2, 3).flatten(1, 2)[:, :length], state


def gated_linear_attention(q, k, v, log_decay, *, mode: str = "chunked", chunk_size: int = 16, initial_state=None):
    if mode not in MODES:
        raise ValueError(f"unknown gated linear attention mode {mode!r}; valid modes: {', '.join(MODES)}")
    state = q.new_zeros(v.shape[0], v.shape[2], q.shape[3], v.shape[3]) if initial_state is None else initial_state  # heads: v's (q, k may broadcast one)
    if mode == "recurrent":
        return gla_recurrent(q, k, v, log_decay, state)
    return gla_chunked(q, k, v, log_decay, state, chunk_size)
