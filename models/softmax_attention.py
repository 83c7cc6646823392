"""Causal multi-head softmax attention with rotary positions and a KV cache for decoding.

Backends: "sdpa" (torch.nn.functional.scaled_dot_product_attention, always available) and
"flash_attn" (flash-attn on CUDA). The backend asked for is the backend used — never a silent switch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.backends import require
from seqbench.models.base import Mixer
from seqbench.models.registry import register
from seqbench.models.rotary import check_heads, rotate

BACKENDS = ("sdpa", "flash_attn")


@register("softmax_attention")
class SoftmaxAttention(Mixer):
    """Causal multi-head softmax attention with rotary positions; KV cache for step().

    Options:
        heads: number of heads
        backend: 'sdpa' (PyTorch's scaled_dot_product_attention) or 'flash_attn' (CUDA; pip install flash-attn)
        rotary_base: base of the rotary position rotation
    """

    modes = ("parallel",)
    DEFAULT_MODE = "parallel"

    def __init__(self, *, d_model: int, heads: int = 4, backend: str = "sdpa", rotary_base: float = 10000.0):
        super().__init__(d_model=d_model)
        self.head_dim = check_heads("softmax_attention", d_model, heads, even_head_dim=True)
        if backend not in BACKENDS:
            raise ValueError(f"softmax_attention: unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        self.heads, self.backend, self.rotary_base = heads, backend, rotary_base
        self.to_qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.to_out = nn.Linear(d_model, d_model, bias=False)

    def _project(self, x, start: int):
        q, k, v = (t.unflatten(-1, (self.heads, self.head_dim)) for t in self.to_qkv(x).chunk(3, dim=-1))
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        return rotate(q, positions, self.rotary_base), rotate(k, positions, self.rotary_base), v

    def _attend(self, q, k, v, causal: bool):
        """q (B, n, H, d), k/v (B, m, H, d) → (B, n, H, d)."""
        if self.backend == "flash_attn":
            flash_attn = require("flash_attn", backend="flash_attn", on_device=q.device)
            return flash_attn.flash_attn_func(q, k, v, causal=causal)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        return out.transpose(1, 2)

    def _forward(self, x, mode):
        q, k, v = self._project(x, 0)
        return self.to_out(self._attend(q, k, v, causal=True).flatten(-2)), (k, v)

    def _step(self, x_t, state):
        k_cache, v_cache = state
        q, k, v = self._project(x_t.unsqueeze(1), k_cache.shape[1])
        k_cache, v_cache = torch.cat([k_cache, k], dim=1), torch.cat([v_cache, v], dim=1)
        y = self._attend(q, k_cache, v_cache, causal=False)  # the one query sees every cached key
        return self.to_out(y[:, 0].flatten(-2)), (k_cache, v_cache)

    def reference_forward(self, x):
        q, k, v = self._project(x.double(), 0)
        scores = torch.einsum("bnhd,bmhd->bhnm", q, k) / self.head_dim ** 0.5
        causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril()
        weights = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        return self.to_out(torch.einsum("bhnm,bmhd->bnhd", weights, v).flatten(-2))

    def backend_used(self, mode=None):
        return self.backend

    def init_state(self, batch_size, device=None, dtype=None):
        empty = torch.zeros(batch_size, 0, self.heads, self.head_dim, device=device, dtype=dtype)
        return empty, empty.clone()

    def state_size(self, seq_len=None):
        """The KV cache grows with the context: 2 · d_model per token."""
        if seq_len is None:
            raise ValueError("softmax_attention: the KV cache grows with the context; pass seq_len")
        return 2 * self.d_model * seq_len
