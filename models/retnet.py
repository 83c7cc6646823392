"""RetNet multi-scale retention (Sun et al. 2023): per-head decay γ_h = 1 − 2^(−5−h), rotary q/k.

    parallel:  Y = (Q Kᵀ ⊙ D) V with D_nm = γ^{n−m} for n ≥ m
    recurrent: S_n = γ S_{n−1} + k_nᵀ v_n,  y_n = q_n S_n
    chunked:   retention inside chunks, the recurrence across them
then GroupNorm per head, a swish gate and an output projection.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.backends import FLA_BACKENDS, check_backend
from seqbench.models.base import Mixer, full_precision, op_dtype
from seqbench.models.fla_backend import simple_gla
from seqbench.models.registry import register
from seqbench.models.rotary import check_heads, rotate
from seqbench.models.short_conv import ShortConvolution, check_short_conv, with_window, without_window


def decay_matrix(log_gamma: torch.Tensor, query_positions, key_positions) -> torch.Tensor:
    """(H, n, m): γ^{n−m} where n ≥ m, else 0 — built from log γ so no power overflows."""
    distance = (query_positions[:, None] - key_positions[None, :]).to(log_gamma.dtype)
    decay = torch.exp(log_gamma[:, None, None] * distance.clamp_min(0))
    return decay * (distance >= 0)


def retention_parallel(q, k, v, log_gamma):
    positions = torch.arange(q.shape[1], device=q.device)
    scores = torch.einsum("bnhd,bmhd->bhnm", q, k) * decay_matrix(log_gamma, positions, positions)
    return torch.einsum("bhnm,bmhv->bnhv", scores, v)


def retention_step(q_t, k_t, v_t, log_gamma, state):
    state = log_gamma.exp()[:, None, None] * state + k_t.unsqueeze(-1) * v_t.unsqueeze(-2)
    return torch.einsum("bhd,bhdv->bhv", q_t, state), state


def retention_recurrent(q, k, v, log_gamma, state):
    outputs = []
    for q_t, k_t, v_t in zip(q.unbind(1), k.unbind(1), v.unbind(1)):
        y_t, state = retention_step(q_t, k_t, v_t, log_gamma, state)
        outputs.append(y_t)
    return torch.stack(outputs, dim=1), state


def retention_chunked(q, k, v, log_gamma, state, chunk_size):
    outputs = []
    for start in range(0, q.shape[1], chunk_size):
        qc, kc, vc = (t[:, start:start + chunk_size] for t in (q, k, v))
        positions = torch.arange(qc.shape[1], device=q.device)
        inner = retention_parallel(qc, kc, vc, log_gamma)
        from_start = torch.exp(log_gamma[:, None] * (positions + 1))  # (H, C): γ^{i+1}
        carried = torch.einsum("bnhd,hn,bhdv->bnhv", qc, from_start, state)
        outputs.append(inner + carried)
        to_end = torch.exp(log_gamma[:, None] * (positions[-1] - positions))  # γ^{C−1−j}
        state = torch.exp(log_gamma * qc.shape[1])[:, None, None] * state + torch.einsum(
            "bnhd,hn,bnhv->bhdv", kc, to_end, vc)
    return torch.cat(outputs, dim=1), state


NORMS = ("groupnorm", "rmsnorm")


@register("retnet")
class RetNet(Mixer):
    """RetNet multi-scale retention: fixed per-head decay, rotary positions, a per-head norm and swish gate.

    Options:
        heads: number of heads, head h with its own fixed decay γ_h = 1 − 2^(−5−h)
        chunk_size: chunk length of the chunked mode
        rotary_base: base of the rotary position rotation of q and k
        short_conv: kernel size of a causal depthwise convolution + SiLU on q, k, v (0 = off; not in RetNet's paper)
        norm: per-head output norm: 'groupnorm' (the paper's: mean-subtracting, affine) or 'rmsnorm' (torchscale's current code: no mean, no affine)
        value_factor: value (and gate) width as a multiple of d_model; the paper uses 2
        backend: 'torch', or 'fla' (CUDA: the chunked mode through flash-linear-attention's chunk_simple_gla with g_gamma = log γ)
    """

    modes = ("parallel", "recurrent", "chunked")
    DEFAULT_MODE = "chunked"

    def __init__(self, *, d_model: int, heads: int = 4, chunk_size: int = 64, rotary_base: float = 10000.0,
                 short_conv: int = 0, norm: str = "groupnorm", value_factor: int = 2, backend: str = "torch"):
        super().__init__(d_model=d_model)
        self.backend = check_backend("retnet", backend, FLA_BACKENDS)
        self.head_dim = check_heads("retnet", d_model, heads, even_head_dim=True)
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"retnet: chunk_size must be a positive integer, got {chunk_size!r}")
        if norm not in NORMS:
            raise ValueError(f"retnet: unknown norm {norm!r}; valid: {', '.join(NORMS)}")
        if not isinstance(value_factor, int) or isinstance(value_factor, bool) or value_factor < 1:
            raise ValueError(f"retnet: value_factor must be a positive integer, got {value_factor!r}")
        check_short_conv("retnet", short_conv)
        self.heads, self.chunk_size, self.rotary_base = heads, chunk_size, rotary_base
        self.d_value, self.value_dim = value_factor * d_model, value_factor * self.head_dim
        widths = (d_model, d_model, self.d_value)  # q, k, v
        self.to_qkv = nn.Linear(d_model, sum(widths), bias=False)
        self.qkv_conv = ShortConvolution(sum(widths), short_conv) if short_conv else None
        self.to_gate = nn.Linear(d_model, self.d_value, bias=False)
        self.to_out = nn.Linear(self.d_value, d_model, bias=False)
        self.norm = nn.GroupNorm(heads, self.d_value) if norm == "groupnorm" else nn.RMSNorm(self.value_dim, eps=1e-6, elementwise_affine=False)
        self.register_buffer("log_gamma", torch.log(1 - 2.0 ** (-5.0 - torch.arange(heads, dtype=torch.float64))))

    def _split(self, projected, start: int):
        q, k, v = projected.split([self.d_model, self.d_model, self.d_value], dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)) for t in (q, k, v))
        positions = torch.arange(start, start + projected.shape[1], device=projected.device)
        q, k = rotate(q, positions, self.rotary_base), rotate(k, positions, self.rotary_base)
        return q, k * self.head_dim ** -0.5, v

    def _project(self, x, start: int, window=None):
        projected = self.to_qkv(x)
        if self.qkv_conv is not None:
            projected, window = self.qkv_conv(projected, window)
        return *self._split(projected, start), window

    def _output(self, y, x):
        """y: (..., heads, value_dim) → per-head norm, swish gate, output projection."""
        if isinstance(self.norm, nn.GroupNorm):
            y = self.norm(y.reshape(-1, self.d_value)).reshape(*y.shape[:-2], self.d_value)
        else:
            y = self.norm(y).flatten(-2)
        return self.to_out(F.silu(self.to_gate(x)) * y)

    def _forward(self, x, mode):
        q, k, v, window = self._project(x, 0)
        if self.backend == "fla" and mode == "chunked":
            return self._fla_forward(q, k, v, x, window)
        with full_precision(x.device):  # the retention in float32 under autocast
            q, k, v = (t.to(op_dtype(x.dtype)) for t in (q, k, v))
            y, state = self._retention(q, k, v, mode)
        return self._output(y.to(x.dtype), x), with_window(self.qkv_conv, (state, x.shape[1]), window)

    def _fla_forward(self, q, k, v, x, window):
        """fla's chunk kernel takes bf16/fp16 inputs as they are and keeps its states in float32."""
        log_gamma = self.log_gamma.to(q.dtype)
        state = self._zero_kv(x.shape[0], x.device, q.dtype)
        y, state = simple_gla(q, k, v, g_gamma=log_gamma, initial_state=state)
        return self._output(y.to(x.dtype), x), with_window(self.qkv_conv, (state, x.shape[1]), window)

    def _retention(self, q, k, v, mode):
        x_dtype, device, length = q.dtype, q.device, q.shape[1]
        log_gamma = self.log_gamma.to(x_dtype)
        state = self._zero_kv(q.shape[0], device, x_dtype)
        if mode == "parallel":
            y = retention_parallel(q, k, v, log_gamma)
            to_end = torch.exp(log_gamma[:, None] * torch.arange(length - 1, -1, -1, device=device))
            state = torch.einsum("bnhd,hn,bnhv->bhdv", k, to_end, v)
        elif mode == "recurrent":
            y, state = retention_recurrent(q, k, v, log_gamma, state)
        else:
            y, state = retention_chunked(q, k, v, log_gamma, state, self.chunk_size)
        return y, state

    def backend_used(self, mode=None):
        return "fla" if self.backend == "fla" and self.resolve_mode(mode) == "chunked" else "torch"

    def _step(self, x_t, state):
        (kv_state, position), window = without_window(self.qkv_conv, state)
        *qkv, window = self._project(x_t.unsqueeze(1), position, window)
        q, k, v = (t[:, 0] for t in qkv)
        y_t, kv_state = retention_step(q, k, v, self.log_gamma.to(x_t.dtype), kv_state)
        return self._output(y_t, x_t), with_window(self.qkv_conv, (kv_state, position + 1), window)

    def reference_forward(self, x):
        x = x.double()
        projected = self.to_qkv(x)
        q, k, v = self._split(projected if self.qkv_conv is None else self.qkv_conv.reference(projected), 0)
        gamma = self.log_gamma.exp()
        outputs = []
        for n in range(x.shape[1]):  # y_n = Σ_{m ≤ n} γ^{n−m} (q_n · k_m) v_m, literally
            weights = torch.stack([gamma ** (n - m) * (q[:, n] * k[:, m]).sum(-1) for m in range(n + 1)], dim=1)
            outputs.append(torch.einsum("bmh,bmhv->bhv", weights, v[:, : n + 1]))
        return self._output(torch.stack(outputs, dim=1), x)

    def _zero_kv(self, batch_size, device=None, dtype=None):
        return torch.zeros(batch_size, self.heads, self.head_dim, self.value_dim, device=device, dtype=dtype)

    def init_state(self, batch_size, device=None, dtype=None):
        window = self.qkv_conv.init_window(batch_size, device, dtype) if self.qkv_conv is not None else None
        return with_window(self.qkv_conv, (self._zero_kv(batch_size, device, dtype), 0), window)

    def state_size(self, seq_len=None):
        window = self.qkv_conv.state_size() if self.qkv_conv is not None else 0
        return self.heads * self.head_dim * self.value_dim + window
