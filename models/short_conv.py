"""A short causal depthwise convolution (+ SiLU) over projected channels, carrying its window.

Zoology's and flash-linear-attention's recall models put one on q, k and v; none of the papers this
harness reproduces (GateLoop, RetNet, linear attention) has one. It is an option of those mixers
(`short_conv`: kernel size, 0 = off) so that its effect is measured like-for-like, not assumed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_short_conv(mixer: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{mixer}: short_conv is a kernel size (0: no convolution), got {value!r}")


class ShortConvolution(nn.Conv1d):
    def __init__(self, channels: int, kernel_size: int):
        super().__init__(channels, channels, kernel_size, groups=channels)

    def forward(self, x: torch.Tensor, window: torch.Tensor | None = None):
        """SiLU(conv) over x (batch, length, channels), continuing from `window` — the last
        kernel_size − 1 inputs before x, zeros at the start. Returns (output, the new window).
        The taps are shifted multiply-adds on (batch, length, channels): Conv1d wants channels first,
        two transposed copies, and its backward took longer than the rest of a Mamba-2 layer's."""
        if window is None:
            window = self.init_window(x.shape[0], x.device, x.dtype)
        padded, length, weight = torch.cat([window.to(x.dtype), x], dim=1), x.shape[1], self.weight[:, 0]
        out = torch.addcmul(self.bias, padded[:, :length], weight[:, 0])
        for tap in range(1, self.kernel_size[0]):
            out = torch.addcmul(out, padded[:, tap:tap + length], weight[:, tap])
        return F.silu(out), padded[:, padded.shape[1] - self.window_length:]

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same in float64, tap by tap: out_t = SiLU(Σ_j w_j · x_(t−K+1+j) + b)."""
        x = x.double()
        padded = F.pad(x, (0, 0, self.window_length, 0))
        weight = self.weight[:, 0].double()
        taps = sum(padded[:, j : j + x.shape[1]] * weight[:, j] for j in range(self.kernel_size[0]))
        return F.silu(taps + self.bias.double())

    @property
    def window_length(self) -> int:
        return self.kernel_size[0] - 1

    def init_window(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        return torch.zeros(batch_size, self.window_length, self.in_channels, device=device, dtype=dtype)

    def state_size(self) -> int:
        return self.window_length * self.in_channels


def with_window(conv: ShortConvolution | None, state, window):
    """A mixer's state, paired with the convolution's window when it has one."""
    return state if conv is None else (state, window)


def without_window(conv: ShortConvolution | None, state):
    """(the mixer's own state, the window or None): the inverse of with_window."""
    return (state, None) if conv is None else state
