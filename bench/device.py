"""Which device a run uses: the one choice every run kind (training, speed, throughput) and the GPU
check make the same way."""
from __future__ import annotations


def resolve_device(name: str):
    """'auto' → CUDA where torch sees a device, else CPU; 'cuda' without one is an error saying so."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA device here; use device='cpu' or 'auto'")
    return torch.device(name)
