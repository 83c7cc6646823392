"""Mamba's selective state-space block (Gu & Dao 2023): a compiled CPU scan, pure PyTorch, or mamba-ssm's CUDA kernels.

    u = SiLU(causal depthwise conv(W_in x)),  Δ_t = softplus(W_Δ u_t + b),  B_t, C_t = W_B u_t, W_C u_t
    x_t = exp(Δ_t A) ⊙ x_{t−1} + Δ_t B_t u_t,   y_t = C_t x_t + D u_t,   out = W_out (y ⊙ SiLU(z))
The selective scan is a real linear recurrence (ops.py: the compiled CPU loop or PyTorch's
sequential loop for the recurrent mode, the doubling scan for the scan mode). On CUDA, "auto" picks
mamba-ssm's kernel when it is installed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.backends import check_backend, require, resolve_compiled
from seqbench.models.base import Mixer, full_precision, op_dtype
from seqbench.models.mamba import compiled
from seqbench.models.mamba.ops import MODES, selective_scan, signed_decay
from seqbench.models.mamba.reference import selective_scan_reference
from seqbench.models.registry import register

BACKENDS = ("auto", "cpp", "torch", "mamba_ssm")
MAMBA_SSM = "mamba_ssm.ops.selective_scan_interface"


@register("mamba")
class Mamba(Mixer):
    """Mamba selective SSM block: compiled CPU scan, pure-PyTorch scan, or mamba-ssm's CUDA kernel.

    Options:
        d_state: state size N per channel
        d_conv: kernel size of the causal depthwise convolution
        expand: inner width as a multiple of d_model
        dt_rank: rank of the Δ projection; None = ceil(d_model / 16)
        backend: 'auto' (CPU: the compiled loop where it builds; CUDA: mamba-ssm if installed; else PyTorch), 'cpp', 'torch', 'mamba_ssm'
        negative_eigenvalues: decays 2exp(ΔA) − 1 ∈ (−1, 1), not exp(ΔA) ∈ (0, 1): a state can flip sign (arXiv 2411.12537); PyTorch only
    """

    modes = MODES
    no_weight_decay = ("log_neg_a", "skip")
    DEFAULT_MODE = "recurrent"  # O(L); compiled on CPU

    def __init__(self, *, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None, backend: str = "auto", negative_eigenvalues: bool = False):
        super().__init__(d_model=d_model)
        check_backend("mamba", backend, BACKENDS)
        if not isinstance(negative_eigenvalues, bool):
            raise ValueError(f"mamba: negative_eigenvalues must be true or false, got {negative_eigenvalues!r}")
        if negative_eigenvalues and backend in ("cpp", "mamba_ssm"):
            raise ValueError(f"mamba: backend {backend!r} has decays in (0, 1) only; negative_eigenvalues needs 'torch' or 'auto'")
        self.negative_eigenvalues = negative_eigenvalues
        for name, value, least in (("d_state", d_state, 1), ("d_conv", d_conv, 2), ("expand", expand, 1)):
            if not isinstance(value, int) or value < least:
                raise ValueError(f"mamba: {name} must be an integer ≥ {least}, got {value!r}")
        self.d_state, self.d_conv, self.backend = d_state, d_conv, backend
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner)
        with torch.no_grad():  # Δ initialised log-uniform in [1e-3, 1e-1] through softplus⁻¹
            dt = torch.exp(torch.empty(self.d_inner).uniform_(math.log(1e-3), math.log(1e-1)))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.log_neg_a = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.skip = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def _selection(self, u):
        """Δ (…, d_inner), B and C (…, d_state) from the convolved input u."""
        dt, b, c = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.softplus(self.dt_proj(dt)), b, c

    def _scan_inputs(self, u):
        dt, b, c = self._selection(u)
        a = -self.log_neg_a.exp()
        decay = signed_decay(torch.exp(dt.unsqueeze(-1) * a), self.negative_eigenvalues)  # (…, d_inner, d_state)
        inputs = (dt * u).unsqueeze(-1) * b.unsqueeze(-2)
        return decay, inputs, c

    def resolve_backend(self, mode: str, device: torch.device) -> str:
        """The implementation `backend` means for this mode on this device (negative eigenvalues: PyTorch's)."""
        if self.negative_eigenvalues:
            return "torch"
        return resolve_compiled("mamba", self.backend, device=device, applies=mode == "recurrent",
                                available=compiled.available, cuda_module=MAMBA_SSM, cuda_backend="mamba_ssm")

    def _forward(self, x, mode):
        xz = self.in_proj(x)
        pre_conv, z = xz.chunk(2, dim=-1)
        u = F.silu(self._causal_conv(pre_conv))
        backend = self.resolve_backend(mode, x.device)
        if backend == "mamba_ssm":
            y, ssm_state = self._mamba_ssm_scan(u, z)
        else:
            dt, b, c = self._selection(u)
            with full_precision(x.device):  # the scan in float32 under autocast (bf16 projections around it)
                real = op_dtype(x.dtype)
                y, ssm_state = selective_scan(*(t.to(real) for t in (u, dt)), -self.log_neg_a.exp().to(real),
                                              *(t.to(real) for t in (b, c, self.skip)), mode=mode, backend=backend,
                                              negative_eigenvalues=self.negative_eigenvalues)
            y = y.to(z.dtype) * F.silu(z)
        conv_state = F.pad(pre_conv.transpose(1, 2), (self.d_conv - 1, 0))[..., -(self.d_conv - 1):]
        return self.out_proj(y), (conv_state, ssm_state)

    def _causal_conv(self, x):
        """The depthwise causal convolution on (B, L, d_inner) as d_conv shifted multiply-adds: Conv1d
        wanted (B, d_inner, L), two transposed copies, and its backward took longer than the scan's."""
        weight, length = self.conv.weight[:, 0], x.shape[1]  # weight (d_inner, d_conv)
        padded = F.pad(x, (0, 0, self.d_conv - 1, 0))
        out = torch.addcmul(self.conv.bias, padded[:, :length], weight[:, 0])
        for tap in range(1, self.d_conv):
            out = torch.addcmul(out, padded[:, tap:tap + length], weight[:, tap])
        return out

    def _mamba_ssm_scan(self, u, z):
        interface = require(MAMBA_SSM, backend="mamba_ssm", on_device=u.device)
        dt, b, c = self._selection(u)
        y, last_state = interface.selective_scan_fn(
            u.transpose(1, 2).contiguous(), dt.transpose(1, 2).contiguous(), -self.log_neg_a.exp(),
            b.transpose(1, 2).contiguous(), c.transpose(1, 2).contiguous(), self.skip, z.transpose(1, 2).contiguous(),
            return_last_state=True,
        )
        return y.transpose(1, 2), last_state

    def _step(self, x_t, state):
        conv_state, ssm_state = state
        pre_conv, z = self.in_proj(x_t).chunk(2, dim=-1)
        window = torch.cat([conv_state, pre_conv.unsqueeze(-1)], dim=-1)  # (B, d_inner, d_conv)
        u = F.silu((window * self.conv.weight[:, 0]).sum(-1) + self.conv.bias)
        decay, inputs, c = self._scan_inputs(u)
        ssm_state = decay * ssm_state + inputs
        y = ((ssm_state * c.unsqueeze(-2)).sum(-1) + self.skip * u) * F.silu(z)
        return self.out_proj(y), (window[..., 1:], ssm_state)

    def reference_forward(self, x):
        x = x.double()
        pre_conv, z = self.in_proj(x).chunk(2, dim=-1)
        weight = self.conv.weight[:, 0]  # (d_inner, d_conv): the causal conv written out
        padded = F.pad(pre_conv, (0, 0, self.d_conv - 1, 0))
        u = F.silu(torch.stack([(padded[:, t : t + self.d_conv].transpose(1, 2) * weight).sum(-1)
                                for t in range(x.shape[1])], dim=1) + self.conv.bias)
        dt, b, c = self._selection(u)
        y, _ = selective_scan_reference(u, dt, -self.log_neg_a.exp(), b, c, self.skip, negative_eigenvalues=self.negative_eigenvalues)
        return self.out_proj(y * F.silu(z))

    def backend_used(self, mode=None):
        parameter = next(self.parameters())
        return self.resolve_backend(self.resolve_mode(mode), parameter.device)

    def init_state(self, batch_size, device=None, dtype=None):
        conv = torch.zeros(batch_size, self.d_inner, self.d_conv - 1, device=device, dtype=dtype)
        return conv, torch.zeros(batch_size, self.d_inner, self.d_state, device=device, dtype=dtype)

    def state_size(self, seq_len=None):
        return self.d_inner * (self.d_state + self.d_conv - 1)
