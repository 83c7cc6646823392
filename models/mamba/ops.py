"""selective_scan(u, dt, A, Bm, C, skip, *, mode, backend) → (y, final state): every implementation
of Mamba's scan behind one call, each tested against reference.py (outputs, final state, gradients).

    recurrent   O(L) in time: the compiled CPU loop (compiled.py) where it builds, else PyTorch's sequential loop
    scan        the doubling scan of models/scan.py: O(L log L) work, O(log L) depth

Shapes: u, dt (B, L, D); A (D, N) (negative: decays); Bm, C (B, L, N); skip (D).
`negative_eigenvalues` maps each decay e^{ΔA} ∈ (0, 1) to 2e^{ΔA} − 1 ∈ (−1, 1) (arXiv 2411.12537):
a transition that can flip a state's sign; PyTorch's paths only (the compiled loop has the positive range).
"""
from __future__ import annotations

from seqbench.models.backends import check_backend, resolve_compiled
from seqbench.models.mamba import compiled
from seqbench.models.scan import linear_recurrence

MODES = ("recurrent", "scan")
BACKENDS = ("auto", "cpp", "torch")


def resolve_backend(backend: str, mode: str, device) -> str:
    check_backend("mamba", backend, BACKENDS)
    return resolve_compiled("mamba", backend, device=device, applies=mode == "recurrent", available=compiled.available)


def selective_scan(u, dt, A, Bm, C, skip, *, mode: str = "recurrent", backend: str = "auto", negative_eigenvalues: bool = False):
    if mode not in MODES:
        raise ValueError(f"unknown Mamba scan mode {mode!r}; valid modes: {', '.join(MODES)}")
    if negative_eigenvalues and backend == "cpp":
        raise ValueError("mamba: the compiled loop has decays in (0, 1) only; negative_eigenvalues runs on backend 'torch'")
    if not negative_eigenvalues and resolve_backend(backend, mode, u.device) == "cpp":
        return compiled.selective_scan_cpp(u, dt, A, Bm, C, skip)
    decay = signed_decay((dt.unsqueeze(-1) * A).exp(), negative_eigenvalues)  # (B, L, D, N)
    inputs = (dt * u).unsqueeze(-1) * Bm.unsqueeze(-2)
    states = linear_recurrence(decay, inputs, method="sequential" if mode == "recurrent" else "doubling")
    return (states * C.unsqueeze(-2)).sum(-1) + skip * u, states[:, -1]


def signed_decay(decay, negative_eigenvalues: bool):
    """e^{ΔA} as it is, or stretched to 2e^{ΔA} − 1: the eigenvalue range (−1, 1) of arXiv 2411.12537."""
    return 2 * decay - 1 if negative_eigenvalues else decay
