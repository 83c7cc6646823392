"""gated_linear_attention(q, k, v, log_decay, *, mode, chunk_size, initial_state) → (o, final state):
the recurrence of every gated linear-attention mixer here, behind one call, each mode tested against
reference.py (outputs, final state, gradients) at odd lengths and several chunk sizes.

    S_t = diag(exp(g_t)) S_{t−1} + k_tᵀ v_t,    o_t = q_t S_t        (per head: S is d_k × d_v)

g_t ≤ 0 is the log decay, per key channel (GLA: (B, L, H, K)) or one per head broadcast over the
keys (Mamba-2's SSD: (B, L, H, 1)) — one recurrence, the state-space duality of arXiv 2405.21060.

    recurrent   the loop above: L sequential steps of O(K·V) each
    chunked     chunks of C tokens: inside a chunk a masked C × C attention whose weights carry the
                decay between two positions, exp(G_t − G_s) per key channel (G the cumulative log decay
                inside the chunk: the exponent is ≤ 0, so no gate, however small, can overflow it);
                across chunks the state, carried as in the recurrence. fla's naive chunk form.

Shapes: q, k (B, L, H, K); v (B, L, H, V); state (B, H, K, V). q carries its own scale.
"""
from __future__ import annotations

import torch

MODES = ("recurrent", "chunked")


def gla_recurrent(q, k, v, log_decay, state):
    outputs = []
    for t in range(q.shape[1]):
        state = state * log_decay[:, t].exp().unsqueeze(-1) + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)
        outputs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], state))
    return torch.stack(outputs, 1), state


def gla_chunked(q, k, v, log_decay, state, chunk_size: int):
    outputs, per_key = [], log_decay.shape[-1] > 1
    for start in range(0, q.shape[1], chunk_size):
        qc, kc, vc, gc = (t[:, start:start + chunk_size] for t in (q, k, v, log_decay))
        cumulative = gc.cumsum(1)  # G_t (B, C, H, K or 1)
        size = qc.shape[1]
        causal = torch.ones(size, size, dtype=torch.bool, device=q.device).tril()
        between = cumulative.unsqueeze(2) - cumulative.unsqueeze(1)  # G_t − G_s (B, t, s, H, K or 1)
        between = torch.where(causal[None, :, :, None, None], between, float("-inf")).exp()
        if per_key:
            scores = torch.einsum("bthk,bshk,btshk->bhts", qc, kc, between)
        else:
            scores = torch.einsum("bthk,bshk->bhts", qc, kc) * between[..., 0].permute(0, 3, 1, 2)
        within = torch.einsum("bhts,bshv->bthv", scores, vc)
        carried = torch.einsum("bthk,bhkv->bthv", qc * cumulative.exp(), state)
        outputs.append(within + carried)
        to_end = (cumulative[:, -1:] - cumulative).exp()  # exp(G_C − G_s) ≤ 1
        state = state * cumulative[:, -1].exp().unsqueeze(-1) + torch.einsum("bshk,bshv->bhkv", kc * to_end, vc)
    return torch.cat(outputs, 1), state


def gated_linear_attention(q, k, v, log_decay, *, mode: str = "chunked", chunk_size: int = 16, initial_state=None):
    if mode not in MODES:
        raise ValueError(f"unknown gated linear attention mode {mode!r}; valid modes: {', '.join(MODES)}")
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[3]) if initial_state is None else initial_state
    if mode == "recurrent":
        return gla_recurrent(q, k, v, log_decay, state)
    return gla_chunked(q, k, v, log_decay, state, chunk_size)
