"""Optional CUDA backends (models/backends.py): a missing package is named with its install command
only when asked for; where installed, it matches pure PyTorch."""
import pytest
import torch

from seqbench import models
from seqbench.models.backends import try_import
from tests.helpers import relative_error

# --- optional CUDA backends ---------------------------------------------------------------------
OPTIONAL = [("softmax_attention", "flash_attn", "flash_attn", "flash-attn"),
            ("mamba", "mamba_ssm", "mamba_ssm.ops.selective_scan_interface", "mamba-ssm")]


@pytest.mark.parametrize("name,backend,module,package", OPTIONAL)
def test_missing_optional_backend_names_package_and_install_command(name, backend, module, package):
    if try_import(module) is not None:
        pytest.skip(f"{package} is installed here")
    layer = models.build(name, d_model=16, backend=backend)  # constructing is fine; running needs the package
    with pytest.raises(RuntimeError, match=rf"backend '{backend}' needs the package '{package}'.*pip install 'seqbench\[cuda\]'"):
        layer(torch.randn(1, 4, 16))


@pytest.mark.cuda
@pytest.mark.parametrize("name,backend,module,package", OPTIONAL)
def test_optional_backend_matches_pure_pytorch_on_cuda(name, backend, module, package):
    if try_import(module) is None or not torch.cuda.is_available():
        pytest.skip(f"needs {package} and a CUDA device")
    torch.manual_seed(0)
    fast = models.build(name, d_model=64, backend=backend).cuda().half()
    pure = models.build(name, d_model=64, **({"backend": "torch"} if name == "mamba" else {})).cuda().half()
    pure.load_state_dict(fast.state_dict())
    x = torch.randn(2, 128, 64, device="cuda", dtype=torch.half)
    assert relative_error(fast(x), pure(x)) < 1e-2
