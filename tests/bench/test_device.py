"""The device choice (bench/device.py): 'auto' takes CUDA only where torch sees it; asking for CUDA
where there is none is an error that says what to use instead."""
import pytest
import torch

from seqbench.bench.device import resolve_device


def test_auto_follows_what_torch_sees_and_cpu_is_always_there():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
def test_cuda_without_a_device_says_to_use_cpu_or_auto():
    with pytest.raises(RuntimeError, match="torch sees no CUDA device here; use device='cpu' or 'auto'"):
        resolve_device("cuda")
