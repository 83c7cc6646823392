import torch


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖, computed in float64 / complex128."""
    expected = expected.to(torch.complex128 if expected.is_complex() else torch.float64)
    actual = actual.to(expected.dtype)
    return ((actual - expected).abs().norm() / expected.abs().norm().clamp_min(1e-300)).item()
