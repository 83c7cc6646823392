"""Decays P_n / P_m = ∏_{j=m+1..n} a_j formed stably, from cumulative log-transitions.

The literal surrogate-attention form multiplies by P_n and divides by P_m; since |P| decays
geometrically, 1/P_m overflows (complex64: 14% non-finite outputs at L=128). Here the cumulative
log-magnitude R_n = Σ log|a_j| is summed in float64 (so R_n − R_m keeps full relative precision
even when both are large), the phase Φ_n = Σ arg a_j is wrapped to [0, 2π) before it is cast (so
Φ_n − Φ_m is exact modulo 2π), and only exp(R_n − R_m) with n ≥ m — never a large positive
exponent — is evaluated.
"""
from __future__ import annotations

import math

import torch

# log|a| below this is treated as a full reset (exp(-80) ≈ 2e-35); keeps differences finite when a → 0
LOG_MAGNITUDE_FLOOR = -80.0


def cumulative_log_transition(a: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 R = Σ log|a| and Φ = Σ arg a (wrapped to [0, 2π), cast to a's real dtype) along `dim`."""
    log_a = torch.log(a)
    log_magnitude = log_a.real.clamp(min=LOG_MAGNITUDE_FLOOR).double().cumsum(dim)
    phase = torch.remainder(log_a.imag.double().cumsum(dim), 2 * math.pi).to(a.real.dtype)
    return log_magnitude, phase


def polar_decay(log_magnitude: torch.Tensor, phase: torch.Tensor, real_dtype: torch.dtype) -> torch.Tensor:
    """exp(R + iΦ) as a complex tensor; R must be ≤ 0-ish (a difference n ≥ m, or a prefix)."""
    return torch.polar(torch.exp(log_magnitude.to(real_dtype)), phase.to(real_dtype))


def causal_decay_scores(q, k, log_magnitude_q, log_magnitude_k, phase_q, phase_k, causal):
    """scores[..., n, m, h] = Σ_i q[n,i] k[m,i] Re(P_n / P_m)_i where causal[n, m], else 0.

    q: (..., n, H, dk), k: (..., m, H, dk); log-magnitudes float64 and phases alike; causal (n, m) bool.
    """
    causal = causal[:, :, None, None]
    log_ratio = (log_magnitude_q.unsqueeze(-3) - log_magnitude_k.unsqueeze(-4)).to(q.dtype)
    log_ratio = log_ratio.masked_fill(~causal, float("-inf"))
    angle = (phase_q.unsqueeze(-3) - phase_k.unsqueeze(-4)).masked_fill(~causal, 0.0)
    decay = torch.exp(log_ratio) * torch.cos(angle)
    return (q.unsqueeze(-3) * k.unsqueeze(-4) * decay).sum(-1)
