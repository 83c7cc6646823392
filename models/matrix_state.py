"""What the gated matrix-state mixers share (GLA, Gated DeltaNet): a d_k × d_v state per head beside an
optional short convolution's window, the gated RMSNorm output per head, fla's kernel for the chunked
mode — and the option checks and head widths every 2024–25 mixer uses."""
from __future__ import annotations

import torch

from seqbench.models.base import Mixer, op_dtype
from seqbench.models.short_conv import with_window


def positive_int(mixer: str, name: str, value, least: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{mixer}: {name} must be an integer ≥ {least}, got {value!r}")
    return value


def head_width(mixer: str, name: str, d_model: int, expand, heads: int) -> int:
    """Per-head width round(expand · d_model / heads), at least 1: any solved d_model gives whole heads."""
    if not isinstance(expand, (int, float)) or isinstance(expand, bool) or expand <= 0:
        raise ValueError(f"{mixer}: {name} must be a positive number, got {expand!r}")
    return max(1, round(expand * d_model / heads))


class MatrixStateMixer(Mixer):
    """Needs `heads`, `head_k`, `head_v`, `qkv_conv` (or None), `norm` (GatedRMSNorm over head_v),
    `to_output_gate` (or None), `to_out` and `backend` ('torch' or 'fla')."""

    def _output(self, o, x):
        """o (…, heads, head_v) → per-head RMSNorm, SiLU output gate, output projection."""
        gate = None if self.to_output_gate is None else self.to_output_gate(x).unflatten(-1, (self.heads, self.head_v))
        return self.to_out(self.norm(o.to(x.dtype), gate).flatten(-2))

    def backend_used(self, mode=None):
        return "fla" if self.backend == "fla" and self.resolve_mode(mode) == "chunked" else "torch"

    def init_state(self, batch_size, device=None, dtype=None):
        state = torch.zeros(batch_size, self.heads, self.head_k, self.head_v, device=device, dtype=op_dtype(dtype))
        window = self.qkv_conv.init_window(batch_size, device, dtype) if self.qkv_conv is not None else None
        return with_window(self.qkv_conv, state, window)

    def state_size(self, seq_len=None):
        window = self.qkv_conv.state_size() if self.qkv_conv is not None else 0
        return self.heads * self.head_k * self.head_v + window
