"""Mamba-2 (Dao & Gu 2024, arXiv 2405.21060): Mamba's selective SSM with a scalar decay per head —
the restriction that makes it linear attention with a per-head gate (state-space duality), so its
chunked mode is SSD's block decomposition: models/gla/ops.py with one gate per head.

    z, xBC, Δ = x W_in;   x, B, C = SiLU(causal depthwise conv(xBC));   Δ_t = softplus(Δ_t + dt_bias)
    h_t = exp(Δ_t A) h_{t−1} + Δ_t x_t B_tᵀ  (per head: head_dim × d_state, A = −exp(A_log) a scalar)
    y_t = h_t C_t + D x_t;   out = RMSNorm(y ⊙ SiLU(z)) W_out
B and C are shared by every head (mamba-ssm's ngroups = 1). Defaults are mamba-ssm's `Mamba2` module
(docs/sources.md maps its parameters onto these).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.backends import check_backend, require
from seqbench.models.base import Mixer, full_precision, op_dtype
from seqbench.models.gated_norm import GatedRMSNorm
from seqbench.models.gla.ops import MODES, gated_linear_attention, gla_recurrent
from seqbench.models.mamba2.reference import ssd_reference
from seqbench.models.matrix_state import positive_int
from seqbench.models.registry import register
from seqbench.models.short_conv import ShortConvolution

BACKENDS = ("torch", "mamba_ssm")
MAMBA_SSM = "mamba_ssm.ops.triton.ssd_combined"


@register("mamba2")
class Mamba2(Mixer):
    """Mamba-2 (SSD, 2024): selective SSM with one scalar decay per head, run as chunked linear attention.

    Options:
        d_state: state size N per head (B and C have this width)
        d_conv: kernel size of the causal depthwise convolution on x, B, C
        expand: inner width as a multiple of d_model
        head_dim: width of each head's x (heads = inner width // head_dim, at least one)
        chunk_size: chunk length of the chunked mode (SSD's block size)
        backend: 'torch' or 'mamba_ssm' (CUDA: the chunked mode by mamba-ssm's mamba_chunk_scan_combined)
    """

    modes = MODES
    DEFAULT_MODE = "chunked"
    no_weight_decay = ("log_decay_rate", "dt_bias", "skip")

    def __init__(self, *, d_model: int, d_state: int = 128, d_conv: int = 4, expand: int = 2, head_dim: int = 64,
                 chunk_size: int = 64, backend: str = "torch"):
        super().__init__(d_model=d_model)
        self.backend = check_backend("mamba2", backend, BACKENDS)
        for name, value, least in (("d_state", d_state, 1), ("d_conv", d_conv, 2), ("expand", expand, 1), ("head_dim", head_dim, 1),
                                   ("chunk_size", chunk_size, 1)):
            positive_int("mamba2", name, value, least)
        self.d_state, self.chunk_size = d_state, chunk_size
        self.heads = max(1, expand * d_model // head_dim)
        self.head_dim = expand * d_model // self.heads
        self.d_inner = self.heads * self.head_dim
        self.conv_width = self.d_inner + 2 * d_state
        self.in_proj = nn.Linear(d_model, self.d_inner + self.conv_width + self.heads, bias=False)  # z, xBC, Δ
        self.conv = ShortConvolution(self.conv_width, d_conv)
        with torch.no_grad():  # mamba-ssm's initialisation: A ~ U(1, 16), Δ log-uniform in [1e-3, 0.1] through softplus⁻¹
            dt = torch.exp(torch.empty(self.heads).uniform_(math.log(1e-3), math.log(1e-1))).clamp_min(1e-4)
            self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
            self.log_decay_rate = nn.Parameter(torch.empty(self.heads).uniform_(1, 16).log())
        self.skip = nn.Parameter(torch.ones(self.heads))
        self.norm = GatedRMSNorm(self.d_inner, gate_first=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def _split(self, projected, convolved):
        """z, x (…, heads, head_dim), B, C (…, d_state), Δ (…, heads) from the projection and the convolved xBC."""
        z, _, dt = projected.split([self.d_inner, self.conv_width, self.heads], dim=-1)
        x, b, c = convolved.split([self.d_inner, self.d_state, self.d_state], dim=-1)
        return z, x.unflatten(-1, (self.heads, self.head_dim)), b, c, F.softplus(dt + self.dt_bias)

    def _conv_input(self, projected):
        return projected[..., self.d_inner:self.d_inner + self.conv_width]

    def _ssd(self, x, b, c, dt, mode, state=None):
        """The SSM as gated linear attention: q = C, k = B (one head, broadcast to every head: C·B is
        computed once), v = Δ x, log decay Δ A per head."""
        q, k = c.unsqueeze(-2), b.unsqueeze(-2)
        log_decay = (-self.log_decay_rate.exp() * dt).unsqueeze(-1)
        if mode == "step":
            return gla_recurrent(q, k, x * dt.unsqueeze(-1), log_decay, state)
        return gated_linear_attention(q, k, x * dt.unsqueeze(-1), log_decay, mode=mode, chunk_size=self.chunk_size)

    def _output(self, y, x, z, dtype):
        y = (y + self.skip[:, None] * x).flatten(-2).to(dtype)
        return self.out_proj(self.norm(y, z))

    def _forward(self, inputs, mode):
        projected = self.in_proj(inputs)
        convolved, window = self.conv(self._conv_input(projected))
        z, x, b, c, dt = self._split(projected, convolved)
        if self.backend == "mamba_ssm" and mode == "chunked":
            y, state = self._mamba_ssm(x, b, c, dt)
            return self._output(y.to(x.dtype), x, z, inputs.dtype), (state, window)
        with full_precision(inputs.device):
            real = op_dtype(inputs.dtype)
            y, state = self._ssd(*(t.to(real) for t in (x, b, c, dt)), mode)
        return self._output(y, x.to(real), z, inputs.dtype), (state, window)

    def _mamba_ssm(self, x, b, c, dt):
        """mamba-ssm's SSD kernel (B, C with ngroups = 1); its state is (B, H, head_dim, N): transposed here."""
        kernel = require(MAMBA_SSM, backend="mamba_ssm", on_device=x.device).mamba_chunk_scan_combined
        y, state = kernel(x, dt, -self.log_decay_rate.exp(), b.unsqueeze(-2), c.unsqueeze(-2), chunk_size=self.chunk_size,
                          return_final_states=True)
        return y, state.transpose(-1, -2)

    def _step(self, x_t, state):
        ssm_state, window = state
        projected = self.in_proj(x_t.unsqueeze(1))
        convolved, window = self.conv(self._conv_input(projected), window)
        z, x, b, c, dt = self._split(projected, convolved)
        with full_precision(x_t.device):
            real = op_dtype(x_t.dtype)
            y, ssm_state = self._ssd(*(t.to(real) for t in (x, b, c, dt)), "step", ssm_state.to(real))
        return self._output(y, x.to(real), z, x_t.dtype)[:, 0], (ssm_state, window)

    def reference_forward(self, inputs):
        inputs = inputs.double()
        projected = self.in_proj(inputs)
        z, x, b, c, dt = self._split(projected, self.conv.reference(self._conv_input(projected)))
        y, _ = ssd_reference(x, dt, -self.log_decay_rate.exp(), b, c)
        return self._output(y, x, z, inputs.dtype)

    def backend_used(self, mode=None):
        return "mamba_ssm" if self.backend == "mamba_ssm" and self.resolve_mode(mode) == "chunked" else "torch"

    def init_state(self, batch_size, device=None, dtype=None):
        state = torch.zeros(batch_size, self.heads, self.d_state, self.head_dim, device=device, dtype=op_dtype(dtype))
        return state, self.conv.init_window(batch_size, device, dtype)

    def state_size(self, seq_len=None):
        return self.heads * self.d_state * self.head_dim + self.conv.state_size()
