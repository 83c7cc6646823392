"""Device and dtype follow the input, in every mode of every mixer, checked without a GPU: on
PyTorch's meta device any tensor a forward creates on the CPU (a missing `device=`) clashes with
the input and raises, as it would on CUDA. What this cannot see — a CUDA-only kernel, or an op with
no CUDA implementation — is left to a GPU run (README, "GPU")."""
import pytest
import torch

from seqbench import models

CASES = [(name, mode) for name in models.available() for mode in models.registry.get_class(name).modes]
OPTIONS = {"gateloop": {"heads": 4, "backend": "torch"}}  # the compiled path is CPU-only by design


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_mode_keeps_the_inputs_device_and_dtype(name, mode, dtype):
    with torch.device("meta"):
        mixer = models.build(name, d_model=16, **OPTIONS.get(name, {})).to(dtype)
    x = torch.randn(2, 9, 16, device="meta", dtype=dtype)
    y, state = mixer(x, mode=mode, return_state=True)
    assert y.device.type == "meta" and y.dtype == dtype and y.shape == x.shape
    y_t, _ = mixer.step(x[:, 0], state)
    assert y_t.device.type == "meta" and y_t.dtype == dtype
