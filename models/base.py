"""The one interface every sequence mixer implements.

A mixer maps (batch, length, d_model) → (batch, length, d_model) causally, in any of its `modes`
(all computing the same function), can return its final state after a prefill, and can decode
one token at a time from a state with O(1) work per token (attention: O(context)).
"""
from __future__ import annotations

import abc
import contextlib
from typing import Any

import torch
from torch import nn


class Mixer(nn.Module, abc.ABC):
    """Subclass this for a mixer of your own: call `super().__init__(d_model=d_model)` first in a
    keyword-only `__init__`, name its `modes` and `DEFAULT_MODE`, and implement `_forward`, `_step`,
    `init_state`, `state_size` and a float64 `reference_forward` (README, "Bring your own mixer";
    `seqbench check` runs the contract every built-in mixer passes)."""

    modes: tuple[str, ...] = ()
    DEFAULT_MODE: str = ""  # the mode `forward` runs when none is given, with default options
    registry_name: str = ""
    # parameters that set decay rates or time scales: weight decay would pull them toward a fixed
    # memory (|a| = ½ for a zero logit), biasing exactly what an ablation compares
    no_weight_decay: tuple[str, ...] = ()

    def __init__(self, *, d_model: int):
        super().__init__()
        self.d_model = d_model

    @classmethod
    def default_mode_for(cls, options: dict[str, Any]) -> str:
        """The mode `forward` runs when none is given, for a mixer built with `options` (d_model
        among them): what listings and speed runs read before any mixer exists. A mixer whose best
        mode depends on its options overrides this; an instance's `default_mode` asks it, so the
        class and its instances can never disagree."""
        return cls.DEFAULT_MODE

    def mode_options(self) -> dict[str, Any]:
        """The options `default_mode_for` reads, as this instance was built."""
        return {"d_model": self.d_model}

    @property
    def default_mode(self) -> str:
        return self.default_mode_for(self.mode_options())

    # --- public interface -------------------------------------------------------------------
    def forward(self, x: torch.Tensor, mode: str | None = None, return_state: bool = False):
        mode = self.resolve_mode(mode)
        self._check_input(x, ndim=3)
        y, state = self._forward(x, mode)
        return (y, state) if return_state else y

    def step(self, x_t: torch.Tensor, state: Any):
        self._check_input(x_t, ndim=2)
        return self._step(x_t, state)

    @abc.abstractmethod
    def init_state(self, batch_size: int, device=None, dtype=None) -> Any:
        """The state before any token: what `step` consumes and `forward(return_state=True)` returns."""

    @abc.abstractmethod
    def state_size(self, seq_len: int | None = None) -> int:
        """Real scalars of decoding state per sequence (a complex number counts as two)."""

    @abc.abstractmethod
    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The literal recurrence or formula in float64: the yardstick every mode is tested against."""

    def backend_used(self, mode: str | None = None) -> str:
        """The implementation that actually runs `mode` (reported with every result)."""
        return "torch"

    def resolve_mode(self, mode: str | None) -> str:
        if mode is None:
            return self.default_mode
        if mode not in self.modes:
            raise ValueError(
                f"unknown mode {mode!r} for mixer {self.registry_name!r}; valid modes: {', '.join(self.modes)}"
            )
        return mode

    # --- implemented by each mixer ----------------------------------------------------------
    @abc.abstractmethod
    def _forward(self, x: torch.Tensor, mode: str) -> tuple[torch.Tensor, Any]:
        """(y, final state) for a validated input and mode."""

    @abc.abstractmethod
    def _step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """(y_t, next state) for one token."""

    # --- helpers ----------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor, *, ndim: int) -> None:
        shape = "(batch, length, d_model)" if ndim == 3 else "(batch, d_model)"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{self.registry_name}: expected a tensor of shape {shape}, got {type(x).__name__}")
        if x.ndim != ndim or x.shape[-1] != self.d_model:
            raise ValueError(
                f"{self.registry_name}: expected input of shape {shape} with d_model={self.d_model}, "
                f"got {tuple(x.shape)}"
            )
        if ndim == 3 and x.shape[1] == 0:
            raise ValueError(f"{self.registry_name}: the sequence is empty (length 0)")
        if not x.is_floating_point():
            raise TypeError(f"{self.registry_name}: expected a floating-point input, got {x.dtype}")


def op_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """The real dtype a recurrence runs in: float64 for float64 inputs, float32 for everything else
    (bfloat16 and float16 included: states summed over thousands of steps need float32)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def full_precision(device: torch.device):
    """Autocast off for a recurrence's core (the projections around it keep autocast's dtype);
    the meta device has no autocast."""
    if device.type == "meta":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, enabled=False)
