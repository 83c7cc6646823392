"""Rotary position embedding (RoFormer / xPos-style rotation without the scale), for RetNet and attention."""
from __future__ import annotations

import torch


def rotate(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """x: (B, L, H, d) with even d; positions: (L,). Rotates channel pairs (i, i + d/2) by position·θ_i."""
    half = x.shape[-1] // 2
    frequencies = base ** (-torch.arange(half, dtype=torch.float64, device=x.device) / half)
    angles = positions.to(torch.float64)[:, None] * frequencies  # float64 keeps long positions exact
    cos, sin = (f(angles).to(x.dtype)[:, None, :] for f in (torch.cos, torch.sin))
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


def check_heads(mixer: str, d_model: int, heads: int, *, even_head_dim: bool) -> int:
    if not isinstance(heads, int) or heads < 1 or d_model % heads:
        raise ValueError(f"{mixer}: heads must be a positive divisor of d_model={d_model}, got {heads!r}")
    head_dim = d_model // heads
    if even_head_dim and head_dim % 2:
        raise ValueError(f"{mixer}: rotary positions need an even head dim; d_model/heads = {head_dim}")
    return head_dim
