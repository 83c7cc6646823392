"""First-order linear recurrences h_t = a_t ⊙ h_{t-1} + b_t along dim 1, shared by GateLoop and S5.

Every method computes the same inclusive prefix under the associative operator
    (a_i, b_i) • (a_j, b_j) = (a_j a_i, a_j b_i + b_j)        (i earlier than j)
and differs only in cost:
  - "sequential": one multiply-add per position, O(L) work, L dependent steps;
  - "doubling":   Hillis–Steele scan, O(L log L) work, log2 L dependent steps (the parallel mode);
  - "odd_even":   the recursive odd/even scan that the independent GateLoop re-implementation uses,
                  O(L) work, 2 log2 L levels of strided slicing and interleaving (kept as a baseline).
An initial state h_0 is folded into the first input: b_1 ← a_1 h_0 + b_1.
"""
from __future__ import annotations

import torch

METHODS = ("sequential", "doubling", "odd_even")

# Chunked modes with decays (GateLoop's rotated form, GLA, Mamba-2's SSD, RWKV-7): e^{g_n − g_m} =
# e^{g_n} · e^{−g_m} makes a chunk's causal product one matmul, (q e^g)(k e^{−g})ᵀ, with no (n × n)
# exponentials: exact while e^{±g} is finite and normal, i.e. while the chunk-local |g| stays below
# this; beyond it (strong decay) a chunk takes the difference form, exact for any decay.
FACTORED_LOG_SPAN = {torch.float32: 50.0, torch.float64: 500.0}


def linear_recurrence(
    a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None, *, method: str = "sequential"
) -> torch.Tensor:
    """All states h_1..h_L, shape of `b`; `a` broadcasts against `b` and `initial_state` against b[:, 0]."""
    if method not in METHODS:
        raise ValueError(f"unknown recurrence method {method!r}; valid methods: {', '.join(METHODS)}")
    if b.ndim < 2 or b.shape[1] == 0:
        raise ValueError(f"expected b of shape (batch, length, ...) with length ≥ 1, got {tuple(b.shape)}")
    a = a.expand_as(b) if a.shape != b.shape else a
    if initial_state is not None:
        b = torch.cat([(a[:, :1] * initial_state.unsqueeze(1) + b[:, :1]), b[:, 1:]], dim=1)
    if method == "sequential":
        return _sequential(a, b)
    if method == "doubling":
        return _doubling(a, b)
    return _odd_even(a, b)[1]


def _sequential(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # unbind (not a[:, t]) keeps backward O(L): indexing would scatter into a full-size gradient per step
    states = []
    h = torch.zeros_like(b[:, 0])
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
        h = a_t * h + b_t
        states.append(h)
    return torch.stack(states, dim=1)


def _doubling(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    length, offset = b.shape[1], 1
    while offset < length:
        b = torch.cat([b[:, :offset], a[:, offset:] * b[:, :-offset] + b[:, offset:]], dim=1)
        a = torch.cat([a[:, :offset], a[:, offset:] * a[:, :-offset]], dim=1)
        offset *= 2
    return b


def _odd_even(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan by pairing neighbours, recursing on the pairs, then filling the even positions."""
    length = b.shape[1]
    if length < 2:
        return a, b
    a_left, a_right = a[:, 0:-1:2], a[:, 1::2]
    b_left, b_right = b[:, 0:-1:2], b[:, 1::2]
    a_odd, b_odd = _odd_even(a_right * a_left, a_right * b_left + b_right)  # prefixes at 1, 3, 5, ...
    a_rest, b_rest = a[:, 2::2], b[:, 2::2]
    n = a_rest.shape[1]
    a_even = torch.cat([a[:, :1], a_rest * a_odd[:, :n]], dim=1)  # prefixes at 0, 2, 4, ...
    b_even = torch.cat([b[:, :1], a_rest * b_odd[:, :n] + b_rest], dim=1)
    return _interleave(a_even, a_odd, length), _interleave(b_even, b_odd, length)


def _interleave(even: torch.Tensor, odd: torch.Tensor, length: int) -> torch.Tensor:
    if odd.shape[1] < even.shape[1]:
        odd = torch.cat([odd, torch.zeros_like(even[:, :1])], dim=1)
    merged = torch.stack([even, odd], dim=2).flatten(1, 2)
    return merged[:, :length]
