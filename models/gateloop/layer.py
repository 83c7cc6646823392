"""The GateLoop mixer: projections to q, k, v and a data-controlled transition a, then the op.

Defaults follow the author-reviewed re-implementation (docs/sources.md) where it published a choice:
max heads, q/k/v from one bias-free projection, |a| = sigmoid(|z|) and arg a = angle(z) for a
complex z from a biased projection, the transition's gradient scaled by 0.9, a SiLU output gate.
Every ablation axis is a constructor option. `short_conv` (off by default) is not GateLoop's: see
models/short_conv.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqbench.core import check_choice
from seqbench.models.base import Mixer, full_precision, op_dtype
from seqbench.models.gateloop import compiled
from seqbench.models.gateloop.decay import LOG_MAGNITUDE_FLOOR
from seqbench.models.gateloop.ops import BACKENDS, MODES, gateloop, resolve_backend
from seqbench.models.gateloop.recurrent import gateloop_step
from seqbench.models.gateloop.reference import gateloop_reference
from seqbench.models.gateloop.rotated import gateloop_rotated_chunked, gateloop_rotated_fla
from seqbench.models.registry import register
from seqbench.models.short_conv import ShortConvolution, check_short_conv, with_window, without_window

STATE_TRANSITIONS = ("data", "fixed", "none")
# From this head_dim on, the chunked mode's matmuls beat the compiled loop on CPU (measured: README,
# "Speed"); on a GPU only the chunked mode is made of matmuls: pass mode="chunked" (or backend="fla").
CHUNKED_FROM_HEAD_DIM = 128
PARAMETERISATIONS = ("sigmoid_of_modulus", "magnitude_and_phase")
KV_PROJECTIONS = ("separate", "joint")
STATE_OPERATORS = ("complex", "real_part")


class _ScaleGradient(torch.autograd.Function):
    """Identity forward (a view: no pass over the data); gradient multiplied by `scale`."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def _scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; gradient multiplied by `scale` (a slower-learning transition)."""
    return x if scale == 1.0 else _ScaleGradient.apply(x, scale)


def _choice(name: str, value, valid) -> None:
    check_choice("gateloop", name, value, valid)


@register("gateloop")
class GateLoop(Mixer):
    """GateLoop (Katsch 2023): linear recurrence with data-controlled complex state transitions.

    Options:
        heads: number of heads; None = d_inner (max heads: one complex scalar of state per channel); fewer heads give each a head_dim × head_dim matrix state
        d_inner: width of q, k, v; None = d_model
        state_transition: 'data' (a_n from the input), 'fixed' (a learned a per head, no input dependence) or 'none' (a = 1: no forgetting)
        complex_transition: complex a (magnitude and phase); False: a real a = σ(|x|) ≥ ½ from one real logit x
        real_transition_sign: with complex_transition=False, keep the logit's sign: a = sign(x)·σ(|x|), phase 0 or π (the re-implementation's real ablation)
        state_operator: 'complex' (h = a·h + kᵀv) or 'real_part' (h = Re(a)·h + kᵀv, a real state; the re-implementation before its update 12)
        transition_parameterisation: 'sigmoid_of_modulus' (|a| = σ(|z|), arg a = ∠z, the re-implementation's) or 'magnitude_and_phase' (|a| = σ(x), arg a = y)
        kv_projection: 'separate' k and v, or 'joint': one projection replaces kᵀv (max heads only)
        output_gate: multiply the output by SiLU of a projection of the input
        transition_grad_scale: scale of the gradient reaching the transition (0.9 in the re-implementation); 1 = unscaled
        sub_layernorm: LayerNorm on the op's output before the gate
        short_conv: kernel size of a causal depthwise convolution + SiLU on q, k, v (0 = off; not in GateLoop's paper)
        chunk_size: chunk length of the chunked mode
        backend: 'auto' (compiled C++ on CPU where it builds, else PyTorch), 'cpp', 'torch', or 'fla' (CUDA: chunked mode by fla's chunk_simple_gla)
    """

    modes = MODES
    no_weight_decay = ("transition_logits",)
    DEFAULT_MODE = "recurrent"  # O(L); compiled on CPU, the fastest correct path there (docs/sources.md)

    @classmethod
    def default_mode_for(cls, options):
        """Chunked for fla (it runs only that mode) and for matrix states of head_dim ≥
        CHUNKED_FROM_HEAD_DIM, where matmuls beat the loop; else the recurrent loop."""
        d_inner = options.get("d_inner") or options.get("d_model")
        heads = options.get("heads") or d_inner
        large_state = d_inner is not None and heads and d_inner // heads >= CHUNKED_FROM_HEAD_DIM
        return "chunked" if options.get("backend") == "fla" or large_state else cls.DEFAULT_MODE

    def mode_options(self):
        return {"d_model": self.d_model, "d_inner": self.d_inner, "heads": self.heads, "backend": self.backend}

    def __init__(
        self,
        *,
        d_model: int,
        heads: int | None = None,
        d_inner: int | None = None,
        state_transition: str = "data",
        complex_transition: bool = True,
        real_transition_sign: bool = False,
        state_operator: str = "complex",
        transition_parameterisation: str = "sigmoid_of_modulus",
        kv_projection: str = "separate",
        output_gate: bool = True,
        transition_grad_scale: float = 0.9,
        sub_layernorm: bool = False,
        short_conv: int = 0,
        chunk_size: int = 64,
        backend: str = "auto",
    ):
        super().__init__(d_model=d_model)
        d_inner = d_model if d_inner is None else d_inner
        heads = d_inner if heads is None else heads
        if not isinstance(heads, int) or heads < 1 or d_inner % heads:
            raise ValueError(f"gateloop: heads must be a positive divisor of d_inner={d_inner}, got {heads!r}")
        _choice("state_transition", state_transition, STATE_TRANSITIONS)
        _choice("transition_parameterisation", transition_parameterisation, PARAMETERISATIONS)
        _choice("kv_projection", kv_projection, KV_PROJECTIONS)
        _choice("state_operator", state_operator, STATE_OPERATORS)
        if real_transition_sign and complex_transition:
            raise ValueError("gateloop: real_transition_sign applies to a real transition; set complex_transition=False with it")
        if real_transition_sign and transition_parameterisation != "sigmoid_of_modulus":
            raise ValueError("gateloop: real_transition_sign keeps the sign that σ(|x|) drops; it needs "
                             "transition_parameterisation='sigmoid_of_modulus'")
        if kv_projection == "joint" and heads != d_inner:
            raise ValueError(
                "gateloop: kv_projection='joint' replaces kᵀv by one projection, which needs max heads "
                f"(heads == d_inner == {d_inner}); got heads={heads}"
            )
        if not 0.0 < transition_grad_scale <= 1.0:
            raise ValueError(f"gateloop: transition_grad_scale must lie in (0, 1], got {transition_grad_scale}")
        check_short_conv("gateloop", short_conv)
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"gateloop: chunk_size must be a positive integer, got {chunk_size!r}")
        self.heads, self.d_inner, self.head_dim = heads, d_inner, d_inner // heads
        self.state_transition, self.complex_transition = state_transition, complex_transition
        self.real_transition_sign, self.state_operator = real_transition_sign, state_operator
        self.transition_parameterisation, self.kv_projection = transition_parameterisation, kv_projection
        self.transition_grad_scale, self.chunk_size = transition_grad_scale, chunk_size
        _choice("backend", backend, (*BACKENDS, "fla"))
        self.backend = backend

        projections = 2 if kv_projection == "joint" else 3  # q and kv, or q, k, v
        self.to_qkv = nn.Linear(d_model, projections * d_inner, bias=False)
        self.qkv_conv = ShortConvolution(projections * d_inner, short_conv) if short_conv else None
        transition_reals = 2 if complex_transition else 1  # per head: complex z, or a real magnitude logit
        if state_transition == "data":
            self.to_transition = nn.Linear(d_model, transition_reals * heads, bias=True)
        elif state_transition == "fixed":
            self.transition_logits = nn.Parameter(torch.randn(heads, transition_reals) * 0.5 + 1.0)
        self.sub_norm = nn.LayerNorm(d_inner) if sub_layernorm else None
        self.to_gate = nn.Linear(d_model, d_inner, bias=False) if output_gate else None
        self.to_out = nn.Linear(d_inner, d_model, bias=False)

    # --- projections ----------------------------------------------------------------------------
    def _logits(self, x: torch.Tensor, real_dtype: torch.dtype) -> list[torch.Tensor]:
        """The transition's logits, one (..., heads) tensor per component: [x] for a real transition,
        [first, second] of z for a complex one; each from its own rows of the projection, so both are
        contiguous and the backward has nothing to stack."""
        parts = 2 if self.complex_transition else 1
        if self.state_transition == "data":
            weight, bias = self.to_transition.weight, self.to_transition.bias
            logits = [F.linear(x, weight[part::parts], bias[part::parts]) for part in range(parts)]
        else:
            logits = [self.transition_logits[:, part].expand(*x.shape[:-1], -1) for part in range(parts)]
        return [_scale_gradient(logit.to(real_dtype), self.transition_grad_scale) for logit in logits]

    def _transition(self, x: torch.Tensor) -> torch.Tensor:
        """a of shape (..., heads, 1), complex64/128: one transition per head, shared by its rows (the op
        broadcasts it; the compiled loop never makes the (..., heads, head_dim) copy)."""
        shape = (*x.shape[:-1], self.heads, 1)
        real_dtype = op_dtype(x.dtype)
        if self.state_transition == "none":
            return torch.ones(shape, dtype=real_dtype, device=x.device).to(_complex(real_dtype))
        logits = self._logits(x, real_dtype)
        if not self.complex_transition:
            real = self._real_transition(logits[0])
            return torch.complex(real, torch.zeros_like(real)).unsqueeze(-1)
        first, second = logits
        if self.transition_parameterisation == "magnitude_and_phase":
            magnitude = torch.sigmoid(first)
            a = torch.complex(magnitude * torch.cos(second), magnitude * torch.sin(second))
        elif self.backend != "fla" and resolve_backend(self.backend, x.device) == "cpp":
            a = compiled.sigmoid_of_modulus_cpp(first, second)  # one pass each way
        else:
            # a = σ(|z|)·z/|z|: the same a as σ(|z|)·e^{i∠z}, without an arctangent, cosine or sine;
            # at z = 0, ∠z = 0 and a = ½ (adding `zero` to |z| and to Re z gives exactly that)
            modulus = torch.hypot(first, second)
            zero = (modulus == 0).to(real_dtype)
            scale = torch.sigmoid(modulus) / (modulus + zero)
            a = torch.complex((first + zero) * scale, second * scale)
        if self.state_operator == "real_part":
            a = torch.complex(a.real, torch.zeros_like(a.real))
        return a.unsqueeze(-1)

    def _real_transition(self, logit: torch.Tensor) -> torch.Tensor:
        if self.transition_parameterisation == "magnitude_and_phase":
            return torch.sigmoid(logit)
        magnitude = torch.sigmoid(logit.abs())
        return torch.where(logit < 0, -magnitude, magnitude) if self.real_transition_sign else magnitude

    def _transition_polar(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log |a|, arg a), each (..., heads): the same transition as `_transition`, for the rotated
        chunked form (rotated.py), which needs the per-head magnitude and phase, not a. A real a < 0
        (a signed real transition, or Re(a) < 0 under the real-part operator) has phase π."""
        real_dtype = op_dtype(x.dtype)
        if self.state_transition == "none":
            zero = torch.zeros(*x.shape[:-1], self.heads, dtype=real_dtype, device=x.device)
            return zero, zero
        if not self.complex_transition or self.state_operator == "real_part":
            a = self._transition(x)[..., 0].real  # real: log |a| and a phase of 0 or π
            return torch.log(a.abs()).clamp(min=LOG_MAGNITUDE_FLOOR), torch.where(a < 0, math.pi, 0.0).to(real_dtype)
        first, second = self._logits(x, real_dtype)
        if self.transition_parameterisation == "magnitude_and_phase":
            return F.logsigmoid(first), second
        modulus = torch.hypot(first, second)
        nonzero = modulus > 0  # at z = 0: ∠z = 0, and no 0/0 in the gradient
        phase = torch.atan2(torch.where(nonzero, second, torch.zeros_like(second)), torch.where(nonzero, first, torch.ones_like(first)))
        return F.logsigmoid(modulus), phase

    def _qkv(self, x: torch.Tensor, window: torch.Tensor | None = None):
        """q, k, v of shape (..., heads, head_dim) in float32/64, and the conv window."""
        real = op_dtype(x.dtype)
        if self.qkv_conv is None:  # one projection per output: contiguous q, k, v, and no activation-sized cat in the backward
            weights = self.to_qkv.weight.split(self.d_inner)
            q, *rest = (F.linear(x, weight).to(real).unflatten(-1, (self.heads, self.head_dim)) for weight in weights)
            k, v = (torch.ones_like(rest[0]), rest[0]) if self.kv_projection == "joint" else rest
            return q, k, v, window
        projected, window = self.qkv_conv(self.to_qkv(x), window)
        return *self._split(projected.to(real)), window

    def _project(self, x: torch.Tensor, window: torch.Tensor | None = None):
        """q, k, v, a and the conv window."""
        q, k, v, window = self._qkv(x, window)
        return q, k, v, self._transition(x), window

    def _split(self, projected: torch.Tensor):
        split = lambda t: t.unflatten(-1, (self.heads, self.head_dim))  # noqa: E731
        if self.kv_projection == "joint":
            q, kv = projected.chunk(2, dim=-1)
            return split(q), torch.ones_like(split(kv)), split(kv)
        return tuple(map(split, projected.chunk(3, dim=-1)))

    def _output(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = rearrange(y, "... h d -> ... (h d)").to(x.dtype)
        if self.sub_norm is not None:
            y = self.sub_norm(y)
        if self.to_gate is not None:
            y = F.silu(self.to_gate(x)) * y
        return self.to_out(y)

    # --- the interface -------------------------------------------------------------------------
    def _forward(self, x, mode):
        if mode == "chunked":  # one transition per head: real matmuls on rotated q, k (rotated.py)
            q, k, v, window = self._qkv(x)
            log_magnitude, phase = self._transition_polar(x)
            with full_precision(x.device):
                if self.backend == "fla":
                    y, state = gateloop_rotated_fla(q, k, v, log_magnitude, phase)
                else:
                    y, state = gateloop_rotated_chunked(q, k, v, log_magnitude, phase, chunk_size=self.chunk_size)
            return self._output(y, x), with_window(self.qkv_conv, state, window)
        q, k, v, a, window = self._project(x)
        with full_precision(x.device):
            backend = "torch" if self.backend == "fla" else self.backend
            y, state = gateloop(q, k, v, a, mode=mode, chunk_size=self.chunk_size, backend=backend)
        return self._output(y, x), with_window(self.qkv_conv, state, window)

    def _step(self, x_t, state):
        state, window = without_window(self.qkv_conv, state)
        q, k, v, a, window = self._project(x_t.unsqueeze(1), window)
        with full_precision(x_t.device):
            y_t, state = gateloop_step(*(t.squeeze(1) for t in (q, k, v, a)), state)
        return self._output(y_t, x_t), with_window(self.qkv_conv, state, window)

    def backend_used(self, mode=None):
        """The compiled loop runs only the recurrent mode, fla only the chunked one; the rest is PyTorch."""
        mode = self.resolve_mode(mode)
        if self.backend == "fla":
            return "fla" if mode == "chunked" else "torch"
        if mode != "recurrent":
            return "torch"
        return resolve_backend(self.backend, self.to_out.weight.device)

    def reference_forward(self, x):
        x = x.double()
        projected = self.to_qkv(x)
        if self.qkv_conv is not None:
            projected = self.qkv_conv.reference(projected)
        y, _ = gateloop_reference(*self._split(projected), self._transition(x))
        return self._output(y, x)

    def init_state(self, batch_size, device=None, dtype=None):
        real_dtype = op_dtype(dtype)
        state = torch.zeros(
            batch_size, self.heads, self.head_dim, self.head_dim, dtype=_complex(real_dtype), device=device
        )
        window = self.qkv_conv.init_window(batch_size, device, dtype) if self.qkv_conv is not None else None
        return with_window(self.qkv_conv, state, window)

    def state_size(self, seq_len=None):
        window = self.qkv_conv.state_size() if self.qkv_conv is not None else 0
        return 2 * self.heads * self.head_dim * self.head_dim + window


def _complex(real_dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if real_dtype == torch.float64 else torch.complex64
