"""dplr_delta_rule(q, k, v, a, b, log_decay, *, mode, chunk_size, initial_state) → (o, final state):
the diagonal-plus-low-rank rule of RWKV-7 in every mode behind one call, each tested against
reference.py (outputs, final state, gradients) at odd lengths and several chunk sizes.

    S_t = (diag(exp g_t) + b_t a_tᵀ) S_{t−1} + k_t v_tᵀ,    o_t = S_tᵀ q_t

    recurrent   the rule as an update: u = S_{t−1}ᵀ a_t; S ← exp(g_t) ⊙ S + b_t uᵀ + k_t v_tᵀ
    chunked     inside a chunk of C tokens, with G the cumulative log decay from the chunk's start
                (per key channel), the read-outs u_t = S_{t−1}ᵀ a_t solve one unit-lower-triangular
                system, (I − A_ab) U = A_ak V + (e^{G_{t−1}} ⊙ a_t)ᵀ S₀, where
                A_xy[t, s] = Σ_d x_{t,d} y_{s,d} e^{G_{t−1,d} − G_{s,d}} (s < t); then
                o_t = (e^{G_t} ⊙ q_t)ᵀ S₀ + Σ_{s≤t} Σ_d q_{t,d} e^{G_{t,d} − G_{s,d}} (b_{s,d} u_s + k_{s,d} v_s)
                and S_C = e^{G_C} ⊙ S₀ + Σ_s e^{G_C − G_s} ⊙ (b_s u_sᵀ + k_s v_sᵀ). The A matrices are
                models/gla/ops.py's decayed_products (one matmul, or pairwise for a chunk decaying
                beyond FACTORED_LOG_SPAN): no overflow whatever the decay (fla's generalized_delta_rule/dplr).

Shapes: q, k, a, b, log_decay (B, L, H, K); v (B, L, H, V); state (B, H, K, V).
"""
from __future__ import annotations

import torch

from seqbench.models.gated_deltanet.ops import chunk_by_chunk, solve_unit_lower
from seqbench.models.gla.ops import decayed_products, in_chunks

MODES = ("recurrent", "chunked")


def dplr_recurrent(q, k, v, a, b, log_decay, state):
    outputs = []
    for t in range(q.shape[1]):
        read = torch.einsum("bhkv,bhk->bhv", state, a[:, t])
        state = state * log_decay[:, t].exp().unsqueeze(-1) + b[:, t].unsqueeze(-1) * read.unsqueeze(-2) \
            + k[:, t].unsqueeze(-1) * v[:, t].unsqueeze(-2)
        outputs.append(torch.einsum("bhkv,bhk->bhv", state, q[:, t]))
    return torch.stack(outputs, 1), state


def dplr_chunked(q, k, v, a, b, log_decay, state, chunk_size: int):
    """Every chunk's own part at once (batched over chunks: the four pair matrices, the solve); the state
    then carried chunk to chunk, where the read-outs u = P + W S₀ need it (the solve is linear in S₀)."""
    length = q.shape[1]
    qc, kc, vc, ac, bc, gc = (in_chunks(t, chunk_size).transpose(2, 3) for t in (q, k, v, a, b, log_decay))  # (B, N, H, C, ·)
    cumulative = gc.cumsum(-2)  # G_t
    before = cumulative - gc  # G_{t−1}
    size = qc.shape[-2]
    inclusive = torch.ones(size, size, dtype=torch.bool, device=q.device).tril()
    strict = inclusive.tril(-1)
    # the four pair matrices a·b, a·k (s < t, decayed from G_{t−1}) and q·b, q·k (s ≤ t, from G_t) as one product
    mask = torch.cat([torch.cat([strict, strict], 1), torch.cat([inclusive, inclusive], 1)], 0)
    pairs = decayed_products(torch.cat([ac, qc], -2), torch.cat([bc, kc], -2), torch.cat([before, cumulative], -2),
                             torch.cat([cumulative, cumulative], -2), mask)
    (ab, ak), (qb, qk) = ((half[..., :size], half[..., size:]) for half in (pairs[..., :size, :], pairs[..., size:, :]))
    system = torch.eye(size, dtype=q.dtype, device=q.device) - ab
    right = torch.cat([ak @ vc, ac * before.exp()], dim=-1)
    solved = solve_unit_lower(system, right)
    from_values, from_state = solved[..., :v.shape[-1]], solved[..., v.shape[-1]:]  # u = P + W S₀
    read_weights, own = qb, qk @ vc
    decayed_q = qc * cumulative.exp()
    to_end = (cumulative[..., -1:, :] - cumulative).exp()
    end_b, added = (bc * to_end).transpose(-1, -2), (kc * to_end).transpose(-1, -2) @ vc
    chunk_decay = cumulative[..., -1, :].exp().unsqueeze(-1)
    outputs = []
    for p, w, r, o, dq, eb, add, decay in zip(*chunk_by_chunk(from_values, from_state, read_weights, own, decayed_q, end_b, added,
                                                              chunk_decay)):
        read = p + w @ state  # u_t = S_{t−1}ᵀ a_t
        outputs.append(dq @ state + r @ read + o)
        state = state * decay + eb @ read + add
    return torch.stack(outputs, 1).transpose(2, 3).flatten(1, 2)[:, :length], state


def dplr_delta_rule(q, k, v, a, b, log_decay, *, mode: str = "chunked", chunk_size: int = 16, initial_state=None):
    if mode not in MODES:
        raise ValueError(f"unknown RWKV-7 rule mode {mode!r}; valid modes: {', '.join(MODES)}")
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[3]) if initial_state is None else initial_state
    if mode == "recurrent":
        return dplr_recurrent(q, k, v, a, b, log_decay, state)
    return dplr_chunked(q, k, v, a, b, log_decay, state, chunk_size)
