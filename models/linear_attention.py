"""Causal linear attention (Katharopoulos et al. 2020) with φ = elu + 1 and its normaliser.

    S_n = S_{n−1} + φ(k_n)ᵀ v_n,  z_n = z_{n−1} + φ(k_n),  y_n = φ(q_n) S_n / (φ(q_n) · z_n + ε)
GateLoop with a = 1 and no normaliser is this recurrence's numerator.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.backends import FLA_BACKENDS, check_backend
from seqbench.models.base import Mixer, full_precision, op_dtype
from seqbench.models.fla_backend import simple_gla
from seqbench.models.registry import register
from seqbench.models.rotary import check_heads
from seqbench.models.short_conv import ShortConvolution, check_short_conv, with_window, without_window

EPSILON = 1e-6


def feature_map(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1


def _normalise(numerator, denominator):
    return numerator / (denominator.unsqueeze(-1) + EPSILON)


def linear_attention_parallel(q, k, v):
    length = q.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    scores = torch.einsum("bnhd,bmhd->bhnm", q, k).masked_fill(~causal, 0.0)
    return _normalise(torch.einsum("bhnm,bmhv->bnhv", scores, v), scores.sum(-1).transpose(1, 2))


def linear_attention_step(q_t, k_t, v_t, state):
    kv, normaliser = state
    kv = kv + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
    normaliser = normaliser + k_t
    y_t = _normalise(torch.einsum("bhd,bhdv->bhv", q_t, kv), (q_t * normaliser).sum(-1))
    return y_t, (kv, normaliser)


def linear_attention_recurrent(q, k, v, state):
    outputs = []
    for q_t, k_t, v_t in zip(q.unbind(1), k.unbind(1), v.unbind(1)):
        y_t, state = linear_attention_step(q_t, k_t, v_t, state)
        outputs.append(y_t)
    return torch.stack(outputs, dim=1), state


def linear_attention_chunked(q, k, v, state, chunk_size):
    kv, normaliser = state
    outputs = []
    for start in range(0, q.shape[1], chunk_size):
        qc, kc, vc = (t[:, start:start + chunk_size] for t in (q, k, v))
        causal = torch.ones(qc.shape[1], qc.shape[1], dtype=torch.bool, device=q.device).tril()
        scores = torch.einsum("bnhd,bmhd->bhnm", qc, kc).masked_fill(~causal, 0.0)
        numerator = torch.einsum("bhnm,bmhv->bnhv", scores, vc) + torch.einsum("bnhd,bhdv->bnhv", qc, kv)
        denominator = scores.sum(-1).transpose(1, 2) + torch.einsum("bnhd,bhd->bnh", qc, normaliser)
        outputs.append(_normalise(numerator, denominator))
        kv = kv + torch.einsum("bnhd,bnhv->bhdv", kc, vc)
        normaliser = normaliser + kc.sum(1)
    return torch.cat(outputs, dim=1), (kv, normaliser)


def linear_attention_fla(q, k, v, state):
    """Numerator and normaliser as two undecayed simple-GLA passes (the normaliser's "value" is 1)."""
    kv, normaliser = state
    numerator, kv = simple_gla(q, k, v, initial_state=kv)
    denominator, normaliser = simple_gla(q, k, torch.ones_like(v[..., :1]), initial_state=normaliser.unsqueeze(-1))
    return _normalise(numerator, denominator.squeeze(-1)), (kv, normaliser.squeeze(-1))


@register("linear_attention")
class LinearAttention(Mixer):
    """Causal linear attention with the elu+1 feature map and a normaliser.

    Options:
        heads: number of heads (d_model must divide evenly)
        chunk_size: chunk length of the chunked mode
        short_conv: kernel size of a causal depthwise convolution + SiLU on q, k, v (0 = off)
        backend: 'torch', or 'fla' (CUDA: the chunked mode's numerator and normaliser through flash-linear-attention's chunk_simple_gla)
    """

    modes = ("parallel", "recurrent", "chunked")
    DEFAULT_MODE = "chunked"

    def __init__(self, *, d_model: int, heads: int = 4, chunk_size: int = 64, short_conv: int = 0, backend: str = "torch"):
        super().__init__(d_model=d_model)
        self.backend = check_backend("linear_attention", backend, FLA_BACKENDS)
        self.head_dim = check_heads("linear_attention", d_model, heads, even_head_dim=False)
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"linear_attention: chunk_size must be a positive integer, got {chunk_size!r}")
        check_short_conv("linear_attention", short_conv)
        self.heads, self.chunk_size = heads, chunk_size
        self.to_qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.qkv_conv = ShortConvolution(3 * d_model, short_conv) if short_conv else None
        self.to_out = nn.Linear(d_model, d_model, bias=False)

    def _split(self, projected):
        q, k, v = (t.unflatten(-1, (self.heads, self.head_dim)) for t in projected.chunk(3, dim=-1))
        return feature_map(q), feature_map(k), v

    def _project(self, x, window=None):
        projected = self.to_qkv(x)
        if self.qkv_conv is not None:
            projected, window = self.qkv_conv(projected, window)
        return *self._split(projected), window

    def _forward(self, x, mode):
        q, k, v, window = self._project(x)
        if self.backend == "fla" and mode == "chunked":  # fla takes bf16/fp16 as it is, its states in float32
            y, state = linear_attention_fla(q, k, v, self._zero_state(x.shape[0], x.device, q.dtype))
            return self.to_out(y.flatten(-2).to(x.dtype)), with_window(self.qkv_conv, state, window)
        with full_precision(x.device):  # the sums over positions in float32 under autocast
            q, k, v = (t.to(op_dtype(x.dtype)) for t in (q, k, v))
            state = self._zero_state(x.shape[0], x.device, q.dtype)
            if mode == "parallel":
                y = linear_attention_parallel(q, k, v)
                state = (torch.einsum("bnhd,bnhv->bhdv", k, v), k.sum(1))
            elif mode == "recurrent":
                y, state = linear_attention_recurrent(q, k, v, state)
            else:
                y, state = linear_attention_chunked(q, k, v, state, self.chunk_size)
        return self.to_out(y.flatten(-2).to(x.dtype)), with_window(self.qkv_conv, state, window)

    def backend_used(self, mode=None):
        return "fla" if self.backend == "fla" and self.resolve_mode(mode) == "chunked" else "torch"

    def _step(self, x_t, state):
        state, window = without_window(self.qkv_conv, state)
        *qkv, window = self._project(x_t.unsqueeze(1), window)
        q, k, v = (t.squeeze(1) for t in qkv)
        y_t, state = linear_attention_step(q, k, v, state)
        return self.to_out(y_t.flatten(-2)), with_window(self.qkv_conv, state, window)

    def reference_forward(self, x):
        projected = self.to_qkv(x.double())
        q, k, v = self._split(projected if self.qkv_conv is None else self.qkv_conv.reference(projected))
        outputs = []
        for n in range(x.shape[1]):  # y_n = Σ_{m≤n} (φq_n·φk_m) v_m / Σ_{m≤n} φq_n·φk_m
            weights = (q[:, n : n + 1] * k[:, : n + 1]).sum(-1)  # (B, m, H)
            outputs.append(torch.einsum("bmh,bmhv->bhv", weights, v[:, : n + 1]) / (weights.sum(1).unsqueeze(-1) + EPSILON))
        return self.to_out(torch.stack(outputs, dim=1).flatten(-2))

    def _zero_state(self, batch_size, device=None, dtype=None):
        kv = torch.zeros(batch_size, self.heads, self.head_dim, self.head_dim, device=device, dtype=dtype)
        return kv, torch.zeros(batch_size, self.heads, self.head_dim, device=device, dtype=dtype)

    def init_state(self, batch_size, device=None, dtype=None):
        window = self.qkv_conv.init_window(batch_size, device, dtype) if self.qkv_conv is not None else None
        return with_window(self.qkv_conv, self._zero_state(batch_size, device, dtype), window)

    def state_size(self, seq_len=None):
        window = self.qkv_conv.state_size() if self.qkv_conv is not None else 0
        return self.heads * self.head_dim * (self.head_dim + 1) + window
