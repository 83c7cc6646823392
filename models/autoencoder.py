"""An encoder–decoder around the same blocks, for tasks scored on reconstruction (MAD's compression):
the mixer layers encode the whole sequence, its last position is the code, and a small MLP decoder
predicts every token from the code plus a sinusoidal embedding of the position — MAD's AutoEncoder
(mad-lab, mad/model/auto_encoder.py, with `global_pool="last"`): the decoder sees nothing of the
input but the code, so the score measures how much the mixer compresses into one state.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from seqbench.models.backbone import LanguageModel


def sinusoidal_positions(length: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """(length, dim): sin on the first half of the channels, cos on the second, frequencies 10000^(−i/half)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * frequencies[None]
    table = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return nn.functional.pad(table, (0, dim - 2 * half)).to(dtype or torch.float32)


class AutoEncoder(LanguageModel):
    """The LanguageModel's embedding and blocks as the encoder; a two-layer MLP decoder (RMSNorm,
    Linear, GELU, twice, as MAD's) from the last position's code to logits at every position."""

    def __init__(self, **language_model_options):
        super().__init__(**language_model_options)
        d = self.d_model
        self.decoder = nn.Sequential(nn.RMSNorm(d), nn.Linear(d, d), nn.GELU(), nn.RMSNorm(d), nn.Linear(d, d), nn.GELU())

    def features(self, tokens: torch.Tensor, mode=None):
        x, _ = super().features(tokens, mode)
        code = x[:, -1:]  # (B, 1, d): everything the decoder gets
        positions = sinusoidal_positions(tokens.shape[1], self.d_model, device=x.device, dtype=x.dtype)
        return self.decoder(code + positions[None]), None

    def step(self, token, states):
        raise ValueError("an autoencoder reconstructs a whole sequence from its code; it does not decode token by token")
