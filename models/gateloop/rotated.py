"""GateLoop with one complex transition per head, in real arithmetic: scalar-gated linear attention
on rotated queries and keys, computed chunk by chunk with matrix multiplications.

With a_n = r_n e^{iθ_n} per head, G_n = Σ_{j≤n} log r_j and Θ_n = Σ_{j≤n} θ_j (docs/sources.md):

    y_n = Σ_{m≤n} e^{G_n − G_m} ⟨q'_n, k'_m⟩ v_m,   q'_n = [q_n cos Θ_n, q_n sin Θ_n],  k'_m likewise

— a data-controlled rotary embedding. The real state S (2·dk × dv) relates to GateLoop's complex
state h by h = e^{iΘ}(S_top − i·S_bottom), which is how an initial state comes in and the final
state goes out, so decoding with `step` continues from it. Inside a chunk the decays e^{g_n − g_m}
(m ≤ n), e^{g_n} and e^{g_C − g_m} come from chunk-local cumulative log-magnitudes and never exceed
1; Θ is summed in float64 and wrapped to [0, 2π) before its cosine and sine, so long sequences
lose no phase accuracy. This is the form flash-linear-attention's `chunk_simple_gla` computes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cumulative_phase(theta: torch.Tensor) -> torch.Tensor:
    """Θ_n = Σ_{j≤n} θ_j along dim 1, summed in float64 and wrapped to [0, 2π)."""
    total = torch.cumsum(theta.double(), dim=1)
    return torch.remainder(total, 2 * math.pi).to(theta.dtype)


def rotate(x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """(…, dk) → (…, 2·dk): [x cos Θ, x sin Θ] with Θ broadcast over the last dim."""
    return torch.cat([x * phase.cos().unsqueeze(-1), x * phase.sin().unsqueeze(-1)], dim=-1)


def gateloop_rotated_chunked(q, k, v, log_magnitude, theta, initial_state=None, *, chunk_size: int = 64):
    """q, k (B, L, H, dk) and v (B, L, H, dv) real; log_magnitude = log r and theta = θ (B, L, H);
    initial_state (B, H, dk, dv) complex or None. Returns y (B, L, H, dv) and the complex final state."""
    batch, length, heads, dk = q.shape
    dv = v.shape[-1]
    phase = cumulative_phase(theta)
    q_rot, k_rot = rotate(q, phase), rotate(k, phase)  # (B, L, H, 2dk)
    padding = (-length) % chunk_size
    if padding:  # log r = 0 and k = 0 after the end: the state passes through unchanged
        q_rot, k_rot, v = (F.pad(t, (0, 0, 0, 0, 0, padding)) for t in (q_rot, k_rot, v))
        log_magnitude = F.pad(log_magnitude, (0, 0, 0, padding))
    chunks = (length + padding) // chunk_size
    q_rot, k_rot, v = (t.reshape(batch, chunks, chunk_size, heads, t.shape[-1]).transpose(2, 3) for t in (q_rot, k_rot, v))
    g = log_magnitude.reshape(batch, chunks, chunk_size, heads).transpose(2, 3).cumsum(-1)  # (B, C, H, n): local G

    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()
    decay = torch.exp((g.unsqueeze(-1) - g.unsqueeze(-2)).masked_fill(~causal, -math.inf))  # e^{g_n − g_m}, m ≤ n
    y = ((q_rot @ k_rot.transpose(-1, -2)) * decay) @ v  # (B, C, H, n, dv)

    to_end = torch.exp(g[..., -1:] - g).unsqueeze(-1)  # e^{g_C − g_m}
    chunk_inputs = (k_rot * to_end).transpose(-1, -2) @ v  # (B, C, H, 2dk, dv)
    chunk_decay = torch.exp(g[..., -1])  # (B, C, H)
    state = q.new_zeros(batch, heads, 2 * dk, dv) if initial_state is None else real_state(initial_state, q.dtype)
    starts = []
    # L / chunk_size small updates; unbind, not [:, c]: each index's backward writes a full-size
    # gradient, which made the backward O(L²) (18 s instead of ~2 s at L = 16384)
    for decay_c, input_c in zip(chunk_decay.unbind(1), chunk_inputs.unbind(1)):
        starts.append(state)
        state = decay_c[:, :, None, None] * state + input_c
    start_states = torch.stack(starts, dim=1)  # (B, C, H, 2dk, dv)
    y = y + (q_rot * torch.exp(g).unsqueeze(-1)) @ start_states
    y = y.transpose(2, 3).reshape(batch, chunks * chunk_size, heads, dv)[:, :length]
    return y, complex_state(state, phase[:, -1])


def real_state(initial_state: torch.Tensor, dtype) -> torch.Tensor:
    """GateLoop's complex state h (B, H, dk, dv) at Θ = 0 as the rotated form's real S = [Re h; −Im h]."""
    return torch.cat([initial_state.real, -initial_state.imag], dim=-2).to(dtype)


def complex_state(state: torch.Tensor, last_phase: torch.Tensor) -> torch.Tensor:
    """The real S (B, H, 2dk, dv) after the last position, phase Θ_T (B, H), as GateLoop's h = e^{iΘ}(S_top − i S_bottom)."""
    dk = state.shape[-2] // 2
    rotation = torch.polar(torch.ones_like(last_phase), last_phase)[..., None, None]
    return rotation * torch.complex(state[..., :dk, :], -state[..., dk:, :])


def gateloop_rotated_fla(q, k, v, log_magnitude, theta, initial_state=None):
    """The same result as `gateloop_rotated_chunked`, computed by flash-linear-attention's kernel
    (models/fla_backend.py) on the rotated queries and keys; CUDA only."""
    from seqbench.models.fla_backend import simple_gla

    phase = cumulative_phase(theta)
    start = None if initial_state is None else real_state(initial_state, q.dtype)
    y, state = simple_gla(rotate(q, phase), rotate(k, phase), v, g=log_magnitude, initial_state=start)
    return y, complex_state(state, phase[:, -1])
