"""Gated DeltaNet (Yang, Kautz & Hatamizadeh 2025, arXiv 2412.06464), with DeltaNet (arXiv
2406.06484) as `gate=False`: a matrix state that is corrected toward each new (key, value) pair — a
non-diagonal transition I − β k kᵀ — and, gated, decayed by a scalar per head.

    q, k, v = SiLU(short conv(x W_q, x W_k, x W_v))  (SiLU alone with short_conv=0);  q, k L2-normalised per head, q scaled by d_k^(−1/2)
    β_t = σ(x_t W_β)  (× 2 with negative_eigenvalues: β ∈ (0, 2), arXiv 2411.12537)
    log α_t = −exp(A_log) · softplus(x_t W_α + dt_bias)   (Mamba-2's gate; α = 1 without the gate)
    S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,   o_t = RMSNorm(S_tᵀ q_t) ⊙ SiLU(x_t W_g),   out = o W_o
Defaults are flash-linear-attention's `GatedDeltaNet` layer (docs/sources.md maps its parameters).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.backends import FLA_BACKENDS, check_backend
from seqbench.models.base import full_precision, op_dtype
from seqbench.models.fla_backend import chunk_gated_delta_rule
from seqbench.models.gated_deltanet.ops import MODES, delta_rule, delta_rule_recurrent
from seqbench.models.gated_deltanet.reference import delta_rule_reference
from seqbench.models.gated_norm import GatedRMSNorm
from seqbench.models.matrix_state import MatrixStateMixer, head_width, positive_int
from seqbench.models.registry import register
from seqbench.models.short_conv import ShortConvolution, check_short_conv, with_window, without_window

L2_EPSILON = 1e-6  # fla's l2norm: x / sqrt(Σx² + ε)


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + L2_EPSILON)


@register("gated_deltanet")
class GatedDeltaNet(MatrixStateMixer):
    """Gated DeltaNet (2025; DeltaNet with gate=False): the delta rule's non-diagonal transition, decayed per head.

    Options:
        heads: number of heads
        expand_k: key width as a multiple of d_model (per head: round(expand_k · d_model / heads))
        expand_v: value width as a multiple of d_model
        gate: scalar decay per head (Gated DeltaNet); False: α = 1 (DeltaNet)
        negative_eigenvalues: β = 2σ(·) ∈ (0, 2), so I − β k kᵀ can flip a direction (state tracking; arXiv 2411.12537); False: β ∈ (0, 1)
        output_gate: multiply the normed output by SiLU of a projection of the input (False: the norm alone)
        short_conv: kernel size of the causal depthwise convolution + SiLU on q, k, v (0 = off: SiLU alone)
        chunk_size: chunk length of the chunked mode
        backend: 'torch' or 'fla' (CUDA: the chunked mode by fla's chunk_gated_delta_rule)
    """

    modes = MODES
    DEFAULT_MODE = "chunked"
    no_weight_decay = ("log_decay_rate", "dt_bias")

    def __init__(self, *, d_model: int, heads: int = 4, expand_k: float = 0.75, expand_v: float = 1.5, gate: bool = True,
                 negative_eigenvalues: bool = False, output_gate: bool = True, short_conv: int = 4, chunk_size: int = 32,
                 backend: str = "torch"):
        super().__init__(d_model=d_model)
        self.backend = check_backend("gated_deltanet", backend, FLA_BACKENDS)
        self.heads = positive_int("gated_deltanet", "heads", heads)
        self.chunk_size = positive_int("gated_deltanet", "chunk_size", chunk_size)
        for name, value in (("gate", gate), ("negative_eigenvalues", negative_eigenvalues), ("output_gate", output_gate)):
            if not isinstance(value, bool):
                raise ValueError(f"gated_deltanet: {name} must be true or false, got {value!r}")
        check_short_conv("gated_deltanet", short_conv)
        self.head_k, self.head_v = (head_width("gated_deltanet", n, d_model, e, heads)
                                    for n, e in (("expand_k", expand_k), ("expand_v", expand_v)))
        self.key_dim, self.value_dim = heads * self.head_k, heads * self.head_v
        self.negative_eigenvalues = negative_eigenvalues
        self.to_qkv = nn.Linear(d_model, 2 * self.key_dim + self.value_dim, bias=False)
        self.qkv_conv = ShortConvolution(2 * self.key_dim + self.value_dim, short_conv) if short_conv else None
        self.to_beta = nn.Linear(d_model, heads, bias=False)
        self.to_decay = nn.Linear(d_model, heads, bias=False) if gate else None
        if gate:  # Mamba-2's initialisation: A ~ U(0, 16), Δ log-uniform in [1e-3, 0.1] through softplus⁻¹
            self.log_decay_rate = nn.Parameter(torch.empty(heads).uniform_(0, 16).clamp_min(1e-4).log())
            dt = torch.exp(torch.empty(heads).uniform_(math.log(1e-3), math.log(1e-1))).clamp_min(1e-4)
            self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.to_output_gate = nn.Linear(d_model, self.value_dim, bias=False) if output_gate else None
        self.norm = GatedRMSNorm(self.head_v)
        self.to_out = nn.Linear(self.value_dim, d_model, bias=False)

    def _gates(self, x):
        """β (…, heads) and log α ≤ 0 (…, heads; zeros without the gate)."""
        beta = torch.sigmoid(self.to_beta(x)) * (2.0 if self.negative_eigenvalues else 1.0)
        if self.to_decay is None:
            return beta, torch.zeros_like(beta)
        return beta, -self.log_decay_rate.exp() * F.softplus(self.to_decay(x) + self.dt_bias)

    def _qkv(self, projected):
        q, k, v = projected.split([self.key_dim, self.key_dim, self.value_dim], dim=-1)
        q, k = (l2_normalise(t.unflatten(-1, (self.heads, self.head_k))) for t in (q, k))
        return q * self.head_k ** -0.5, k, v.unflatten(-1, (self.heads, self.head_v))

    def _project(self, x, window=None):
        projected = self.to_qkv(x)
        if self.qkv_conv is not None:
            projected, window = self.qkv_conv(projected, window)
        else:  # the convolution's SiLU stays without it (fla's layer)
            projected = F.silu(projected)
        return *self._qkv(projected), *self._gates(x), window

    def _forward(self, x, mode):
        q, k, v, beta, log_decay, window = self._project(x)
        if self.backend == "fla" and mode == "chunked":
            o, state = chunk_gated_delta_rule(q, k, v, beta, log_decay)
            return self._output(o, x), with_window(self.qkv_conv, state, window)
        with full_precision(x.device):
            real = op_dtype(x.dtype)
            o, state = delta_rule(*(t.to(real) for t in (q, k, v, beta, log_decay)), mode=mode, chunk_size=self.chunk_size)
        return self._output(o, x), with_window(self.qkv_conv, state, window)

    def _step(self, x_t, state):
        state, window = without_window(self.qkv_conv, state)
        q, k, v, beta, log_decay, window = self._project(x_t.unsqueeze(1), window)
        with full_precision(x_t.device):
            real = op_dtype(x_t.dtype)
            o, state = delta_rule_recurrent(*(t.to(real) for t in (q, k, v, beta, log_decay)), state.to(real))
        return self._output(o[:, 0], x_t), with_window(self.qkv_conv, state, window)

    def reference_forward(self, x):
        x = x.double()
        projected = self.to_qkv(x)
        q, k, v = self._qkv(F.silu(projected) if self.qkv_conv is None else self.qkv_conv.reference(projected))
        o, _ = delta_rule_reference(q, k, v, *self._gates(x))
        return self._output(o, x)
