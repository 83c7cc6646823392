"""Gated Linear Attention (Yang et al. 2024, arXiv 2312.06635): linear attention with a
data-dependent forget gate per key channel — GateLoop's nearest real-valued relative.

    α_t = σ(x_t W_α)^(1/τ)  (W_α low-rank: d_model → r → d_k),   S_t = diag(α_t) S_{t−1} + k_tᵀ v_t
    o_t = RMSNorm(q_t S_t) ⊙ SiLU(x_t W_g),   out = o W_o
with q scaled by d_k^(−1/2), per head. Defaults are flash-linear-attention's `GatedLinearAttention`
layer (docs/sources.md maps its parameters onto these).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.backends import FLA_BACKENDS, check_backend
from seqbench.models.base import full_precision, op_dtype
from seqbench.models.fla_backend import chunk_gla
from seqbench.models.gated_norm import GatedRMSNorm
from seqbench.models.gla.ops import MODES, gated_linear_attention, gla_recurrent
from seqbench.models.gla.reference import gla_reference
from seqbench.models.matrix_state import MatrixStateMixer, head_width, positive_int
from seqbench.models.registry import register
from seqbench.models.short_conv import ShortConvolution, check_short_conv, with_window, without_window


@register("gla")
class GatedLinearAttention(MatrixStateMixer):
    """Gated Linear Attention (GLA, Yang et al. 2024): per-key data-dependent forget gates on a matrix state.

    Options:
        heads: number of heads
        expand_k: key width as a multiple of d_model (per head: round(expand_k · d_model / heads))
        expand_v: value width as a multiple of d_model
        gate_low_rank: rank r of the gate projection d_model → r → d_k
        gate_normalizer: τ in α = σ(x W_α)^(1/τ): larger keeps the gates nearer 1 (longer memory)
        output_gate: multiply the normed output by SiLU of a projection of the input (False: the norm alone)
        short_conv: kernel size of a causal depthwise convolution + SiLU on q, k, v (0 = off, fla's default)
        chunk_size: chunk length of the chunked mode
        backend: 'torch' or 'fla' (CUDA: the chunked mode by fla's chunk_gla)
    """

    modes = MODES
    DEFAULT_MODE = "chunked"  # matmuls: faster than the loop from a few tokens on (results/speed)
    no_weight_decay = ()

    def __init__(self, *, d_model: int, heads: int = 4, expand_k: float = 0.5, expand_v: float = 1.0, gate_low_rank: int = 16,
                 gate_normalizer: float = 16.0, output_gate: bool = True, short_conv: int = 0, chunk_size: int = 16,
                 backend: str = "torch"):
        super().__init__(d_model=d_model)
        self.backend = check_backend("gla", backend, FLA_BACKENDS)
        self.heads = positive_int("gla", "heads", heads)
        self.chunk_size = positive_int("gla", "chunk_size", chunk_size)
        positive_int("gla", "gate_low_rank", gate_low_rank)
        if not isinstance(gate_normalizer, (int, float)) or isinstance(gate_normalizer, bool) or gate_normalizer <= 0:
            raise ValueError(f"gla: gate_normalizer must be a positive number, got {gate_normalizer!r}")
        check_short_conv("gla", short_conv)
        self.head_k, self.head_v = (head_width("gla", n, d_model, e, heads) for n, e in (("expand_k", expand_k), ("expand_v", expand_v)))
        self.key_dim, self.value_dim = heads * self.head_k, heads * self.head_v
        self.gate_normalizer = float(gate_normalizer)
        self.to_qkv = nn.Linear(d_model, 2 * self.key_dim + self.value_dim, bias=False)
        self.qkv_conv = ShortConvolution(2 * self.key_dim + self.value_dim, short_conv) if short_conv else None
        self.to_gate_logits = nn.Sequential(nn.Linear(d_model, gate_low_rank, bias=False), nn.Linear(gate_low_rank, self.key_dim))
        self.to_output_gate = nn.Linear(d_model, self.value_dim, bias=False) if output_gate else None
        self.norm = GatedRMSNorm(self.head_v)
        self.to_out = nn.Linear(self.value_dim, d_model, bias=False)

    def _project(self, x, window=None):
        """q (scaled), k, v (…, heads, width), the log gates log α ≤ 0 (…, heads, d_k) and the conv window."""
        projected = self.to_qkv(x)
        if self.qkv_conv is not None:
            projected, window = self.qkv_conv(projected, window)
        q, k, v = projected.split([self.key_dim, self.key_dim, self.value_dim], dim=-1)
        q, k = (t.unflatten(-1, (self.heads, self.head_k)) for t in (q, k))
        log_gate = F.logsigmoid(self.to_gate_logits(x)).unflatten(-1, (self.heads, self.head_k)) / self.gate_normalizer
        return q * self.head_k ** -0.5, k, v.unflatten(-1, (self.heads, self.head_v)), log_gate, window

    def _forward(self, x, mode):
        q, k, v, log_gate, window = self._project(x)
        if self.backend == "fla" and mode == "chunked":
            o, state = chunk_gla(q, k, v, log_gate)
            return self._output(o, x), with_window(self.qkv_conv, state, window)
        with full_precision(x.device):
            real = op_dtype(x.dtype)
            o, state = gated_linear_attention(*(t.to(real) for t in (q, k, v, log_gate)), mode=mode, chunk_size=self.chunk_size)
        return self._output(o, x), with_window(self.qkv_conv, state, window)

    def _step(self, x_t, state):
        state, window = without_window(self.qkv_conv, state)
        q, k, v, log_gate, window = self._project(x_t.unsqueeze(1), window)
        with full_precision(x_t.device):
            real = op_dtype(x_t.dtype)
            o, state = gla_recurrent(*(t.to(real) for t in (q, k, v, log_gate)), state.to(real))
        return self._output(o[:, 0], x_t), with_window(self.qkv_conv, state, window)

    def reference_forward(self, x):
        x = x.double()
        projected = self.to_qkv(x)
        q, k, v = (projected if self.qkv_conv is None else self.qkv_conv.reference(projected)).split(
            [self.key_dim, self.key_dim, self.value_dim], dim=-1)
        alpha = torch.sigmoid(self.to_gate_logits(x)) ** (1 / self.gate_normalizer)  # α = σ(x W_α)^(1/τ), as the paper writes it
        o, _ = gla_reference(q.unflatten(-1, (self.heads, self.head_k)) * self.head_k ** -0.5, k.unflatten(-1, (self.heads, self.head_k)),
                             v.unflatten(-1, (self.heads, self.head_v)), alpha.log().unflatten(-1, (self.heads, self.head_k)))
        return self._output(o, x)
