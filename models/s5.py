"""S5 (Smith et al. 2023, arXiv 2208.04933): a diagonal complex MIMO state-space model with ZOH
discretisation, followed (as in the reference S5 layer) by an output nonlinearity.

    Λ̄ = exp(ΛΔ),  B̄ = (Λ̄ − 1)/Λ · B̃,  x_k = Λ̄ x_{k−1} + B̄ u_k,  y_k = Re(C̃ x_k) + D u_k
    half_glu1 (the reference's default):  z = GELU(y),  out = z ⊙ σ(W z + b)

With the HiPPO init, B̃ = V⁻¹B and C̃ = CV for real B, C and the eigenvectors V of HiPPO-N, as the
paper initialises them. The linear part is the same recurrence as GateLoop with a constant
transition; both modes use models/scan.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqbench.models.base import Mixer
from seqbench.models.registry import register
from seqbench.models.scan import linear_recurrence

INITS = ("hippo", "ring")
ACTIVATIONS = ("half_glu1", "half_glu2", "full_glu", "gelu", "none")
BC_INITS = ("eigenvectors", "direct")


def hippo_n(state_dim: int) -> torch.Tensor:
    """HiPPO-N, the normal part of HiPPO-LegS (eigenvalues: real parts −1/2, spread imaginary parts)."""
    n = torch.arange(state_dim, dtype=torch.float64)
    root = torch.sqrt(2 * n + 1)
    legs = -torch.where(n[:, None] > n[None, :], torch.outer(root, root), torch.diag(n + 1))
    low_rank = torch.sqrt(n + 0.5)
    return legs + torch.outer(low_rank, low_rank)


def expm1_complex(z: torch.Tensor) -> torch.Tensor:
    """e^z − 1 without cancellation for small |z| (ΛΔ is often ~1e-4: exp(z) − 1 in float32 loses
    most digits): with z = a + ib, e^z − 1 = expm1(a)·cos b − 2 sin²(b/2) + i·e^a·sin b."""
    a, b = z.real, z.imag
    return torch.complex(torch.expm1(a) * torch.cos(b) - 2 * torch.sin(b / 2) ** 2, torch.exp(a) * torch.sin(b))


@register("s5")
class S5(Mixer):
    """S5: diagonal complex MIMO SSM (ZOH, learnable log-step, HiPPO-N or ring init).

    Options:
        state_dim: number of complex state dimensions P
        init: eigenvalue initialisation: 'hippo' (HiPPO-N, as S5's paper) or 'ring'
        dt_min: smallest initial step size Δ
        dt_max: largest initial step size Δ
        activation: output nonlinearity after the SSM as in the reference layer: 'half_glu1' (its default), 'half_glu2', 'full_glu', 'gelu' or 'none'
        bc_init: 'eigenvectors' (B̃ = V⁻¹B, C̃ = CV with HiPPO-N's eigenvectors V, as the paper; ring init has none) or 'direct' (B̃, C̃ drawn as they are)
    """

    modes = ("recurrent", "scan")
    no_weight_decay = ("log_neg_lambda_real", "lambda_imag", "log_step")
    DEFAULT_MODE = "scan"

    def __init__(self, *, d_model: int, state_dim: int = 64, init: str = "hippo",
                 dt_min: float = 1e-3, dt_max: float = 1e-1, activation: str = "half_glu1", bc_init: str = "eigenvectors"):
        super().__init__(d_model=d_model)
        for name, value, valid in (("init", init, INITS), ("activation", activation, ACTIVATIONS), ("bc_init", bc_init, BC_INITS)):
            if value not in valid:
                raise ValueError(f"s5: unknown {name} {value!r}; valid: {', '.join(valid)}")
        if bc_init == "eigenvectors" and init != "hippo":
            raise ValueError("s5: bc_init='eigenvectors' needs init='hippo' (the ring init has no eigenvectors); use bc_init='direct'")
        if not isinstance(state_dim, int) or state_dim < 1:
            raise ValueError(f"s5: state_dim must be a positive integer, got {state_dim!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"s5: need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.state_dim, self.activation = state_dim, activation
        if init == "hippo":
            eigenvalues, eigenvectors = torch.linalg.eig(hippo_n(state_dim))
        else:  # LRU-style ring: continuous eigenvalues whose unit-step decay lies in |λ̄| ∈ [0.9, 0.999]
            radius = torch.empty(state_dim, dtype=torch.float64).uniform_(0.9, 0.999)
            eigenvalues = torch.complex(radius.log(), torch.empty_like(radius).uniform_(0, math.pi / 10))
        self.log_neg_lambda_real = nn.Parameter((-eigenvalues.real).clamp_min(1e-4).log().float())
        self.lambda_imag = nn.Parameter(eigenvalues.imag.float())
        self.log_step = nn.Parameter(torch.empty(state_dim).uniform_(math.log(dt_min), math.log(dt_max)))
        if bc_init == "eigenvectors":  # real B (lecun normal) and C, seen in the eigenbasis
            b = torch.randn(state_dim, d_model, dtype=torch.float64) / math.sqrt(d_model)
            c = torch.randn(d_model, state_dim, dtype=torch.float64) * math.sqrt(0.5 / state_dim)
            b_tilde = torch.linalg.solve(eigenvectors, b.to(eigenvectors.dtype))
            c_tilde = c.to(eigenvectors.dtype) @ eigenvectors
        else:
            b_tilde = torch.view_as_complex(torch.randn(state_dim, d_model, 2, dtype=torch.float64) / math.sqrt(2 * d_model))
            c_tilde = torch.view_as_complex(torch.randn(d_model, state_dim, 2, dtype=torch.float64) * math.sqrt(0.5 / state_dim))
        self.input_matrix = nn.Parameter(torch.view_as_real(b_tilde).float())  # B̃ as (re, im)
        self.output_matrix = nn.Parameter(torch.view_as_real(c_tilde).float())  # C̃
        self.skip = nn.Parameter(torch.randn(d_model))  # D
        self.gate = nn.Linear(d_model, d_model) if activation in ("half_glu1", "half_glu2", "full_glu") else None
        self.gate_value = nn.Linear(d_model, d_model) if activation == "full_glu" else None

    def discretised(self, dtype=torch.float32):
        """(Λ̄ (P,), B̄ (P, H), C̃ (H, P)) as complex tensors of the requested real precision."""
        real = self.log_neg_lambda_real.to(dtype)
        lam = torch.complex(-real.exp(), self.lambda_imag.to(dtype))
        step = self.log_step.to(dtype).exp()
        lam_bar = torch.exp(lam * step)
        b_tilde = torch.view_as_complex(self.input_matrix.to(dtype).contiguous())
        b_bar = (expm1_complex(lam * step) / lam).unsqueeze(-1) * b_tilde
        return lam_bar, b_bar, torch.view_as_complex(self.output_matrix.to(dtype).contiguous())

    def _readout(self, states, c_tilde, u):
        return self._activate(torch.einsum("...p,hp->...h", states, c_tilde).real + self.skip.to(u.dtype) * u)

    def _activate(self, y):
        """The reference layer's output nonlinearity (position-wise, so step = forward still holds)."""
        if self.activation == "none":
            return y
        z = F.gelu(y)
        if self.activation == "gelu":
            return z
        if self.activation == "half_glu1":
            return z * torch.sigmoid(self.gate(z))
        if self.activation == "half_glu2":
            return y * torch.sigmoid(self.gate(z))
        return self.gate_value(z) * torch.sigmoid(self.gate(z))  # full_glu

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
            outputs.append(self._activate((state @ c_tilde.T).real + self.skip.double() * x[:, t]))
        return torch.stack(outputs, dim=1)

    def init_state(self, batch_size, device=None, dtype=None):
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch_size, self.state_dim, dtype=complex_dtype, device=device)

    def state_size(self, seq_len=None):
        return 2 * self.state_dim
