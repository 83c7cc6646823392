"""gateloop(q, k, v, a, *, mode) → (y, final_state): one function, every mode, checked inputs.

Shapes: q, k (B, L, H, dk) real; v (B, L, H, dv) real; a (B, L, H, dk) complex with the matching
precision (float32 ↔ complex64, float64 ↔ complex128), or (B, L, H, 1) for one transition per head (the
layer's: the compiled loop then reads and differentiates one a per head instead of an expanded copy);
state (B, H, dk, dv) complex; y (B, L, H, dv).
"""
from __future__ import annotations

import torch

from seqbench.models.backends import check_backend, resolve_compiled
from seqbench.models.gateloop import compiled
from seqbench.models.gateloop.attention import gateloop_attention, gateloop_attention_literal
from seqbench.models.gateloop.chunked_per_channel import gateloop_chunked_per_channel
from seqbench.models.gateloop.parallel_scan import gateloop_scan
from seqbench.models.gateloop.recurrent import gateloop_recurrent
from seqbench.models.gateloop.rotated import gateloop_rotated_chunked
from seqbench.models.scan import METHODS as SCAN_METHODS

MODES = ("recurrent", "scan", "attention", "chunked")  # the layer's modes; the op takes them all
# the op alone also runs a per-channel chunked form (a transition per channel, which the layer never has)
PER_CHANNEL_CHUNKED = "chunked_per_channel"
# implementations of the recurrent mode: "cpp" is the compiled CPU loop (compiled.py), "auto" picks it
# for CPU tensors when it builds here and the PyTorch loop otherwise; resolve_backend says which ran
BACKENDS = ("auto", "torch", "cpp")
# not a mode to train with: the literal surrogate attention, kept to demonstrate its overflow
LITERAL_VARIANT = "attention_literal"
_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def resolve_backend(backend: str, device: torch.device) -> str:
    """The recurrent mode's implementation that `backend` means on `device`."""
    check_backend("gateloop", backend, BACKENDS)
    return resolve_compiled("gateloop", backend, device=device, applies=True, available=compiled.available)


def gateloop(q, k, v, a, *, mode: str, initial_state=None, chunk_size: int = 64, scan_method: str = "doubling",
             backend: str = "auto"):
    check_inputs(q, k, v, a, initial_state)
    compiled_loop = mode == "recurrent" and resolve_backend(backend, q.device) == "cpp"
    if not compiled_loop and mode != "chunked":
        a = a.expand_as(q)  # one transition per head: every other path takes it per row (a view)
    if mode == "recurrent" or mode == "scan":
        if initial_state is None:
            batch, _, heads, dk = q.shape
            initial_state = torch.zeros(batch, heads, dk, v.shape[-1], dtype=a.dtype, device=q.device)
        if mode == "recurrent":
            if compiled_loop:
                return compiled.gateloop_recurrent_cpp(q, k, v, a, initial_state)
            return gateloop_recurrent(q, k, v, a, initial_state)
        if scan_method not in SCAN_METHODS:
            raise ValueError(f"unknown scan_method {scan_method!r}; valid: {', '.join(SCAN_METHODS)}")
        return gateloop_scan(q, k, v, a, initial_state, method=scan_method)
    if mode == "attention":
        return gateloop_attention(q, k, v, a, initial_state)
    if mode in ("chunked", PER_CHANNEL_CHUNKED):
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if mode == "chunked":
        return _chunked_per_head(q, k, v, a, initial_state, chunk_size)
    if mode == PER_CHANNEL_CHUNKED:
        return gateloop_chunked_per_channel(q, k, v, a, initial_state, chunk_size=chunk_size)
    if mode == LITERAL_VARIANT:
        return gateloop_attention_literal(q, k, v, a, initial_state)
    raise ValueError(f"unknown GateLoop mode {mode!r}; valid modes: {', '.join(MODES)} "
                     f"(and {PER_CHANNEL_CHUNKED!r}, {LITERAL_VARIANT!r})")


def _chunked_per_head(q, k, v, a, initial_state, chunk_size):
    """The layer's chunked mode (rotated.py) for one transition per head: a (B, L, H, 1), or a per-
    row a that is equal across each head's rows. A transition that differs per channel has no
    rotated form: that is mode 'chunked_per_channel'."""
    per_head = a[..., :1]
    if a.shape[-1] != 1 and not torch.equal(a, per_head.expand_as(a)):
        raise ValueError(f"gateloop: mode 'chunked' takes one transition per head (a of shape (B, L, H, 1)), as the layer "
                         f"has; for a transition per channel use mode {PER_CHANNEL_CHUNKED!r}")
    per_head = per_head[..., 0]
    return gateloop_rotated_chunked(q, k, v, torch.log(per_head.abs()), torch.angle(per_head), initial_state,
                                    chunk_size=chunk_size)


def check_inputs(q, k, v, a, initial_state) -> None:
    for name, t in (("q", q), ("k", k), ("v", v), ("a", a)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"gateloop: {name} must be a 4-d tensor (batch, length, heads, dim), got {shape}")
    if q.dtype not in _COMPLEX_OF:
        raise TypeError(f"gateloop: q, k, v must be float32 or float64, got {q.dtype}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"gateloop: q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if a.dtype != _COMPLEX_OF[q.dtype]:
        raise TypeError(f"gateloop: a must be {_COMPLEX_OF[q.dtype]} to match q's {q.dtype}, got {a.dtype}")
    if k.shape != q.shape or a.shape not in (q.shape, (*q.shape[:3], 1)):
        raise ValueError(
            f"gateloop: q, k and a must have one shape (B, L, H, dk), or a (B, L, H, 1) for one transition "
            f"per head; got q {tuple(q.shape)}, k {tuple(k.shape)}, a {tuple(a.shape)}"
        )
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"gateloop: v must be (B, L, H, dv) with q's B, L, H {tuple(q.shape[:3])}, got {tuple(v.shape)}")
    if q.shape[1] == 0:
        raise ValueError("gateloop: the sequence is empty (length 0)")
    if initial_state is not None:
        expected = (q.shape[0], q.shape[2], q.shape[3], v.shape[3])
        if tuple(initial_state.shape) != expected or initial_state.dtype != a.dtype:
            raise ValueError(
                f"gateloop: initial_state must be {a.dtype} of shape (B, H, dk, dv) = {expected}, "
                f"got {initial_state.dtype} {tuple(initial_state.shape)}"
            )
