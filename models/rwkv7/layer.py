"""RWKV-7 "Goose" time mixing (Peng et al. 2025, arXiv 2503.14456): the generalised delta rule with a
vector-valued decay and in-context learning rate, on a token-shifted input.

    x_□ = x_t + (x_{t−1} − x_t) ⊙ μ_□  for □ ∈ {r, w, k, v, a, g}    (token shift, one learned mix each)
    r, k, v = x_r W_r, x_k W_k, x_v W_v;   w_t = exp(−e^{−½} σ(LoRA_w(x_w)))  (decay per key channel, in (0.545, 1))
    a_t = σ(LoRA_a(x_a));   κ̂ = normalise(k ⊙ ξ) per head;   k̃ = k ⊙ (1 + (a − 1) ⊙ α_k)
    S_t = (diag(w_t) − (κ̂_t ⊙ a_t) κ̂_tᵀ) S_{t−1} + k̃_t v_tᵀ,   o_t = S_tᵀ r_t
    out = ((GroupNorm(o) + (Σ r ⊙ k̃ ⊙ ρ) v) ⊙ LoRA_g(x_g)) W_o
The rule runs in ops.py (recurrent, chunked). Two departures from the full RWKV-7, both because
seqbench's interface is one layer (docs/sources.md): no value residual (later layers' v mixed with
layer 0's: every layer here is a first layer), and the initialisation of a first layer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.backends import FLA_BACKENDS, check_backend
from seqbench.models.base import Mixer, full_precision, op_dtype
from seqbench.models.fla_backend import chunk_rwkv7
from seqbench.models.matrix_state import positive_int
from seqbench.models.registry import register
from seqbench.models.rwkv7.ops import MODES, dplr_delta_rule, dplr_recurrent
from seqbench.models.rwkv7.reference import dplr_reference

DECAY_SCALE = 0.6065306597126334  # e^{−½}: w = exp(−e^{−½} σ(·)) ∈ (e^{−0.607}, 1)
SHIFTED = ("r", "w", "k", "v", "a", "g")


def low_rank_default(d_model: int, factor: float) -> int:
    """RWKV-7's LoRA widths: a multiple of 32 near factor · √d_model, at least 32 (fla's rwkv7 layer)."""
    return max(32, int(round(factor * d_model ** 0.5 / 32) * 32))


class LowRank(nn.Sequential):
    """d → r → d' with an activation between (RWKV's LoRA): the data-dependent part of w, a and g."""

    def __init__(self, d_in: int, d_out: int, rank: int, activation: nn.Module, bias: bool = True):
        super().__init__(nn.Linear(d_in, rank, bias=False), activation, nn.Linear(rank, d_out, bias=bias))


def largest_heads(d_model: int, head_dim) -> int:
    """The most heads of about head_dim channels that divide d_model."""
    heads = max(1, round(d_model / positive_int("rwkv7", "head_dim", head_dim)))
    while d_model % heads:
        heads -= 1
    return heads


@register("rwkv7")
class RWKV7(Mixer):
    """RWKV-7 time mixing (2025): the generalised delta rule with vector decay and in-context learning rate.

    Options:
        head_dim: channels per head, about (heads = the most that divide d_model with about this many channels each)
        decay_rank: rank of the decay's LoRA; None = RWKV-7's max(32, ≈ 2.5·√d_model)
        learning_rate_rank: rank of the in-context learning rate's LoRA; None = max(32, ≈ 2.5·√d_model)
        gate_rank: rank of the output gate's LoRA; None = max(32, ≈ 5·√d_model)
        chunk_size: chunk length of the chunked mode
        backend: 'torch' or 'fla' (CUDA: the chunked mode by fla's chunk_rwkv7)
    """

    modes = MODES
    DEFAULT_MODE = "chunked"
    no_weight_decay = ("mix", "removal_key_scale", "learning_rate_key_mix", "bonus")

    def __init__(self, *, d_model: int, head_dim: int = 64, decay_rank: int | None = None, learning_rate_rank: int | None = None,
                 gate_rank: int | None = None, chunk_size: int = 32, backend: str = "torch"):
        super().__init__(d_model=d_model)
        self.backend = check_backend("rwkv7", backend, FLA_BACKENDS)
        self.chunk_size = positive_int("rwkv7", "chunk_size", chunk_size)
        self.heads = largest_heads(d_model, head_dim)
        self.head_dim = d_model // self.heads
        ranks = {}
        for name, value, factor in (("decay_rank", decay_rank, 2.5), ("learning_rate_rank", learning_rate_rank, 2.5),
                                    ("gate_rank", gate_rank, 5.0)):
            ranks[name] = low_rank_default(d_model, factor) if value is None else positive_int("rwkv7", name, value)
        self.to_r, self.to_k, self.to_v = (nn.Linear(d_model, d_model, bias=False) for _ in range(3))
        self.to_decay = LowRank(d_model, d_model, ranks["decay_rank"], nn.Tanh())
        self.to_learning_rate = LowRank(d_model, d_model, ranks["learning_rate_rank"], nn.Identity())
        self.to_gate = LowRank(d_model, d_model, ranks["gate_rank"], nn.Sigmoid(), bias=False)
        self.norm = nn.GroupNorm(self.heads, d_model, eps=self.head_dim * 1e-5)
        self.to_out = nn.Linear(d_model, d_model, bias=False)
        self.mix = nn.Parameter(torch.zeros(len(SHIFTED), d_model))  # μ_r … μ_g
        self.removal_key_scale = nn.Parameter(torch.zeros(d_model))  # ξ (fla's k_k)
        self.learning_rate_key_mix = nn.Parameter(torch.zeros(d_model))  # α_k (fla's k_a)
        self.bonus = nn.Parameter(torch.zeros(self.heads, self.head_dim))  # ρ (fla's r_k)
        self._initialise()

    @torch.no_grad()
    def _initialise(self):
        """RWKV-7's initialisation of a first layer (fla's rwkv7 layer at layer_idx 0): token-shift mixes
        that fall with the channel index, decays from fast to slow across channels with a zigzag inside each
        head; the projections keep PyTorch's default (docs/sources.md: departures)."""
        d, width = self.d_model, self.head_dim
        n = torch.arange(d, dtype=torch.float32)
        ddd = n / d
        linear = n / max(d - 1, 1) - 0.5
        centred = ((n % width) - (width - 1) / 2) / max((width - 1) / 2, 1)
        zigzag = centred * centred.abs()
        for row, power in enumerate((0.2, 0.9, 0.7, 0.7, 0.9, 0.2)):  # r, w, k, v, a, g
            self.mix[row] = 1.0 - ddd ** power
        self.learning_rate_key_mix.fill_(1.02)
        self.bonus.fill_(-0.04)
        self.removal_key_scale.copy_(0.71 - linear * 0.1)
        self.to_decay[2].bias.copy_(-6 + 6 * (n / max(d - 1, 1)) + 0.5 + zigzag * 2.5)
        self.to_learning_rate[2].bias.copy_(-0.19 + zigzag * 0.3 + linear * 0.4)

    def _shifted(self, x, previous):
        """x_□ for every □ (…, 6, d) from x (B, L, d) and the token before it (B, d; zeros at the start)."""
        before = torch.cat([previous.unsqueeze(1), x[:, :-1]], dim=1)
        return x.unsqueeze(-2) + (before - x).unsqueeze(-2) * self.mix

    def _project(self, x, previous):
        """r, k̃, v, a = −κ̂, b = κ̂ ⊙ a_rate, log w (…, heads, head_dim) and the output gate (…, d)."""
        xr, xw, xk, xv, xa, xg = self._shifted(x, previous).unbind(-2)
        per_head = lambda t: t.unflatten(-1, (self.heads, self.head_dim))  # noqa: E731
        k = self.to_k(xk)
        rate = torch.sigmoid(self.to_learning_rate(xa))
        removal = F.normalize(per_head(k * self.removal_key_scale), dim=-1)  # κ̂
        k = k * (1 + (rate - 1) * self.learning_rate_key_mix)  # k̃
        log_decay = -DECAY_SCALE * torch.sigmoid(self.to_decay(xw))
        return (per_head(self.to_r(xr)), per_head(k), per_head(self.to_v(xv)), -removal, removal * per_head(rate),
                per_head(log_decay), self.to_gate(xg))

    def _output(self, o, r, k, v, gate, dtype):
        o = o.to(dtype)
        normed = self.norm(o.flatten(-2).reshape(-1, self.d_model)).reshape(*o.shape[:-2], self.d_model)
        bonus = ((r * k * self.bonus).sum(-1, keepdim=True) * v).flatten(-2)
        return self.to_out((normed + bonus) * gate)

    def _forward(self, x, mode):
        r, k, v, a, b, log_decay, gate = self._project(x, x.new_zeros(x.shape[0], self.d_model))
        if self.backend == "fla" and mode == "chunked":
            o, state = chunk_rwkv7(r, log_decay, k, v, a, b)
        else:
            with full_precision(x.device):
                real = op_dtype(x.dtype)
                o, state = dplr_delta_rule(*(t.to(real) for t in (r, k, v, a, b, log_decay)), mode=mode, chunk_size=self.chunk_size)
        return self._output(o, r, k, v, gate, x.dtype), (state, x[:, -1])

    def _step(self, x_t, state):
        rule_state, previous = state
        r, k, v, a, b, log_decay, gate = self._project(x_t.unsqueeze(1), previous)
        with full_precision(x_t.device):
            real = op_dtype(x_t.dtype)
            o, rule_state = dplr_recurrent(*(t.to(real) for t in (r, k, v, a, b, log_decay)), rule_state.to(real))
        return self._output(o, r, k, v, gate, x_t.dtype)[:, 0], (rule_state, x_t)

    def reference_forward(self, x):
        x = x.double()
        r, k, v, a, b, log_decay, gate = self._project(x, x.new_zeros(x.shape[0], self.d_model))
        o, _ = dplr_reference(r, k, v, a, b, log_decay)
        return self._output(o, r, k, v, gate, x.dtype)

    def backend_used(self, mode=None):
        return "fla" if self.backend == "fla" and self.resolve_mode(mode) == "chunked" else "torch"

    def init_state(self, batch_size, device=None, dtype=None):
        state = torch.zeros(batch_size, self.heads, self.head_dim, self.head_dim, device=device, dtype=op_dtype(dtype))
        return state, torch.zeros(batch_size, self.d_model, device=device, dtype=dtype)

    def state_size(self, seq_len=None):
        return self.heads * self.head_dim * self.head_dim + self.d_model
