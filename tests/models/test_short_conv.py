"""The short causal convolution (models/short_conv.py): its fast taps against the float64 formula,
causality, and a window carried across calls that equals one call over the whole sequence."""
import pytest
import torch

from seqbench.models.short_conv import ShortConvolution, check_short_conv


@pytest.mark.parametrize("kernel_size", [1, 2, 4])
def test_the_taps_are_the_formula_and_split_calls_equal_one(kernel_size):
    torch.manual_seed(0)
    conv = ShortConvolution(6, kernel_size).double()
    x = torch.randn(2, 11, 6, dtype=torch.float64)
    whole, _ = conv(x)
    assert torch.allclose(whole, conv.reference(x), atol=1e-12)
    first, window = conv(x[:, :5])
    second, _ = conv(x[:, 5:], window)
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-12)
    assert conv.state_size() == (kernel_size - 1) * 6


def test_no_output_sees_a_later_input():
    torch.manual_seed(0)
    conv = ShortConvolution(3, 4).double()
    x = torch.randn(1, 10, 3, dtype=torch.float64)
    changed = x.clone()
    changed[:, 6:] += 1.0
    assert torch.equal(conv(x)[0][:, :6], conv(changed)[0][:, :6])


def test_a_kernel_size_is_a_non_negative_integer():
    check_short_conv("gla", 0)
    for bad in (-1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="short_conv is a kernel size"):
            check_short_conv("gla", bad)
