"""MAD's encoder–decoder (models/autoencoder.py): the decoder sees the input only through the last
position's code — two inputs with one code decode alike — and it refuses to decode token by token."""
import pytest
import torch

from seqbench.models.autoencoder import AutoEncoder, sinusoidal_positions


def test_the_decoder_sees_the_input_only_through_the_code():
    torch.manual_seed(0)
    model = AutoEncoder(vocab_size=20, d_model=16, n_layers=1, mixer="gateloop").double()
    tokens = torch.randint(0, 20, (1, 9))
    captured = {}
    model.decoder.register_forward_hook(lambda module, inputs, output: captured.setdefault("input", inputs[0]))
    logits = model(tokens)
    assert logits.shape == (1, 9, 20)
    code = captured["input"][:, :1] - sinusoidal_positions(9, 16, dtype=torch.float64)[None, :1]
    expected = code + sinusoidal_positions(9, 16, dtype=torch.float64)[None]  # the same code at every position
    assert torch.allclose(captured["input"], expected)
    with pytest.raises(ValueError, match="does not decode token by token"):
        model.step(tokens[:, 0], None)


def test_positions_are_sines_then_cosines_padded_to_an_odd_width():
    table = sinusoidal_positions(4, 5)
    assert table.shape == (4, 5) and torch.all(table[:, -1] == 0)
    assert torch.allclose(table[:, 0], torch.sin(torch.arange(4.0))) and torch.allclose(table[:, 2], torch.cos(torch.arange(4.0)))
