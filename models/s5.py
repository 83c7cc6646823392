"""S5 (Smith et al. 2023): a diagonal complex MIMO state-space model with ZOH discretisation.

    Λ̄ = exp(ΛΔ),  B̄ = (Λ̄ − 1)/Λ · B̃,  x_k = Λ̄ x_{k−1} + B̄ u_k,  y_k = Re(C̃ x_k) + D u_k

The same linear recurrence as GateLoop with a constant transition; both modes use models/scan.py.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from seqbench.models.base import Mixer
from seqbench.models.registry import register
from seqbench.models.scan import linear_recurrence

INITS = ("hippo", "ring")


def hippo_n_eigenvalues(state_dim: int) -> torch.Tensor:
    """Eigenvalues of HiPPO-N, the normal part of HiPPO-LegS: real parts −1/2, spread imaginary parts."""
    n = torch.arange(state_dim, dtype=torch.float64)
    root = torch.sqrt(2 * n + 1)
    legs = -torch.where(n[:, None] > n[None, :], torch.outer(root, root), torch.diag(n + 1))
    low_rank = torch.sqrt(n + 0.5)
    return torch.linalg.eigvals(legs + torch.outer(low_rank, low_rank))


@register("s5")
class S5(Mixer):
    """S5: diagonal complex MIMO SSM (ZOH, learnable log-step, HiPPO-N or ring init).

    Options:
        state_dim: number of complex state dimensions P
        init: eigenvalue initialisation: 'hippo' (HiPPO-N, as S5's paper) or 'ring'
        dt_min: smallest initial step size Δ
        dt_max: largest initial step size Δ
    """

    modes = ("recurrent", "scan")
    no_weight_decay = ("log_neg_lambda_real", "lambda_imag", "log_step")
    default_mode = "scan"

    def __init__(self, *, d_model: int, state_dim: int = 64, init: str = "hippo",
                 dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__(d_model=d_model)
        if init not in INITS:
            raise ValueError(f"s5: unknown init {init!r}; valid: {', '.join(INITS)}")
        if not isinstance(state_dim, int) or state_dim < 1:
            raise ValueError(f"s5: state_dim must be a positive integer, got {state_dim!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"s5: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.state_dim = state_dim
        if init == "hippo":
            eigenvalues = hippo_n_eigenvalues(state_dim)
        else:  # LRU-style ring: continuous eigenvalues whose unit-step decay lies in |λ̄| ∈ [0.9, 0.999]
            radius = torch.empty(state_dim, dtype=torch.float64).uniform_(0.9, 0.999)
            eigenvalues = torch.complex(radius.log(), torch.empty_like(radius).uniform_(0, math.pi / 10))
        self.log_neg_lambda_real = nn.Parameter((-eigenvalues.real).clamp_min(1e-4).log().float())
        self.lambda_imag = nn.Parameter(eigenvalues.imag.float())
        self.log_step = nn.Parameter(torch.empty(state_dim).uniform_(math.log(dt_min), math.log(dt_max)))
        scale = 1 / math.sqrt(2 * d_model)
        self.input_matrix = nn.Parameter(torch.randn(state_dim, d_model, 2) * scale)  # B̃, (re, im)
        self.output_matrix = nn.Parameter(torch.randn(d_model, state_dim, 2) * math.sqrt(0.5 / state_dim))  # C̃
        self.skip = nn.Parameter(torch.randn(d_model))  # D

    def discretised(self, dtype=torch.float32):
        """(Λ̄ (P,), B̄ (P, H), C̃ (H, P)) as complex tensors of the requested real precision."""
        real = self.log_neg_lambda_real.to(dtype)
        lam = torch.complex(-real.exp(), self.lambda_imag.to(dtype))
        step = self.log_step.to(dtype).exp()
        lam_bar = torch.exp(lam * step)
        b_tilde = torch.view_as_complex(self.input_matrix.to(dtype).contiguous())
        b_bar = ((lam_bar - 1) / lam).unsqueeze(-1) * b_tilde
        return lam_bar, b_bar, torch.view_as_complex(self.output_matrix.to(dtype).contiguous())

    def _readout(self, states, c_tilde, u):
        return torch.einsum("...p,hp->...h", states, c_tilde).real + self.skip.to(u.dtype) * u

    def _forward(self, x, mode):
        lam_bar, b_bar, c_tilde = self.discretised(x.dtype)
        inputs = torch.einsum("blh,ph->blp", x.to(b_bar.dtype), b_bar)
        method = "sequential" if mode == "recurrent" else "doubling"
        states = linear_recurrence(lam_bar, inputs, method=method)
        return self._readout(states, c_tilde, x), states[:, -1]

    def _step(self, x_t, state):
        lam_bar, b_bar, c_tilde = self.discretised(x_t.dtype)
        state = lam_bar * state + x_t.to(b_bar.dtype) @ b_bar.T
        return self._readout(state, c_tilde, x_t), state

    def reference_forward(self, x):
        x = x.double()
        lam_bar, b_bar, c_tilde = self.discretised(torch.float64)
        state = torch.zeros(x.shape[0], self.state_dim, dtype=torch.complex128, device=x.device)
        outputs = []
        for t in range(x.shape[1]):
            state = lam_bar * state + x[:, t].to(torch.complex128) @ b_bar.T
            outputs.append((state @ c_tilde.T).real + self.skip.double() * x[:, t])
        return torch.stack(outputs, dim=1)

    def init_state(self, batch_size, device=None, dtype=None):
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch_size, self.state_dim, dtype=complex_dtype, device=device)

    def state_size(self, seq_len=None):
        return 2 * self.state_dim
