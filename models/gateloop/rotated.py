"""GateLoop with one complex transition per head, in real arithmetic: scalar-gated linear attention
on rotated queries and keys, computed chunk by chunk with matrix multiplications.

With a_n = r_n e^{iθ_n} per head, G_n = Σ_{j≤n} log r_j and Θ_n = Σ_{j≤n} θ_j (docs/sources.md):

    y_n = Σ_{m≤n} e^{G_n − G_m} ⟨q'_n, k'_m⟩ v_m,   q'_n = [q_n cos Θ_n, q_n sin Θ_n],  k'_m likewise

— a data-controlled rotary embedding. The real state S (2·dk × dv) relates to GateLoop's complex
state h by h = e^{iΘ}(S_top − i·S_bottom), which is how an initial state comes in and the final
state goes out, so decoding with `step` continues from it. Decays come from chunk-local cumulative
log-magnitudes g: e^{g_n}, e^{g_C − g_m} ≤ 1, and e^{−g_m} only where it stays finite (see
FACTORED_LOG_SPAN). Θ is summed in float64 and wrapped to [0, 2π) before its cosine and sine, so long
sequences lose no phase accuracy. This is the form flash-linear-attention's `chunk_simple_gla`
computes; here it runs tile by tile with a written-out backward (_RotatedChunked).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seqbench.models.scan import FACTORED_LOG_SPAN


def cumulative_phase(theta: torch.Tensor) -> torch.Tensor:
    """Θ_n = Σ_{j≤n} θ_j along dim 1, summed in float64 and wrapped to [0, 2π)."""
    total = torch.cumsum(theta.double(), dim=1)
    return torch.remainder(total, 2 * math.pi).to(theta.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """(…, dk) → (…, 2·dk): [x cos Θ, x sin Θ], with cos Θ and sin Θ of shape (…,)."""
    return torch.cat([x * cos.unsqueeze(-1), x * sin.unsqueeze(-1)], dim=-1)


def _unrotate(grad_rotated, x, cos, sin):
    """The gradients of x and Θ from that of [x cos Θ, x sin Θ]."""
    dk = x.shape[-1]
    top, bottom = grad_rotated[..., :dk], grad_rotated[..., dk:]
    grad_x = top * cos.unsqueeze(-1) + bottom * sin.unsqueeze(-1)
    grad_phase = (x * (bottom * cos.unsqueeze(-1) - top * sin.unsqueeze(-1))).sum(-1)
    return grad_x, grad_phase


def gateloop_rotated_chunked(q, k, v, log_magnitude, theta, initial_state=None, *, chunk_size: int = 64):
    """q, k (B, L, H, dk) and v (B, L, H, dv) real; log_magnitude = log r and theta = θ (B, L, H);
    initial_state (B, H, dk, dv) complex or None. Returns y (B, L, H, dv) and the complex final state."""
    batch, _, heads, dk = q.shape
    phase = cumulative_phase(theta)
    state = (q.new_zeros(batch, heads, 2 * dk, v.shape[-1]) if initial_state is None
             else real_state(initial_state, q.dtype))
    y, state = _RotatedChunked.apply(q, k, v, log_magnitude, phase, state, chunk_size)
    return y, complex_state(state, phase[:, -1])


# The work goes a tile (some sequences × a run of chunks) at a time, a tile's temporaries holding about
# this many numbers: small enough to stay in cache (whole-sequence temporaries made every elementwise
# pass wait on memory and page faults, and the time grew faster than L), large enough that the
# per-tile overhead is small.
TILE_ELEMENTS = 2**16
# FACTORED_LOG_SPAN (models/scan.py): the default |a| = σ(|z|) ≥ ½ keeps |g| ≤ 64·log 2 ≈ 44 at chunk size 64.


class _RotatedChunked(torch.autograd.Function):
    """y and the final real state, tile by tile, with a written-out backward that recomputes each
    tile's products: memory is the inputs plus one state per chunk, and nothing (B, L, …)-sized is
    made but the outputs and the gradients."""

    @staticmethod
    def forward(ctx, q, k, v, log_magnitude, phase, state, chunk_size):
        y, final_state = torch.empty_like(v), torch.empty_like(state)
        starts = state.new_empty(state.shape[0], state.shape[1], -(-q.shape[1] // chunk_size), *state.shape[2:])
        for rows, runs in _tiles(q.shape, chunk_size):
            row_state = state[rows]
            for positions in runs:
                run = _Run((rows, positions), chunk_size, q, k, v, log_magnitude, phase)
                chunk_inputs = run.k_end.transpose(-1, -2) @ run.v
                chunks = slice(positions.start // chunk_size, positions.start // chunk_size + run.chunks)
                for c in range(run.chunks):
                    starts[rows, :, chunks.start + c] = row_state
                    row_state = torch.addcmul(chunk_inputs[:, :, c], run.chunk_decay[:, :, c], row_state)
                y_run = run.scores() @ run.v
                y_run += run.q_start @ starts[rows, :, chunks]
                _store(y, (rows, positions), y_run)
            final_state[rows] = row_state
        ctx.chunk_size = chunk_size
        ctx.save_for_backward(q, k, v, log_magnitude, phase, starts)
        return y, final_state

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y, grad_final):
        q, k, v, log_magnitude, phase, starts = ctx.saved_tensors
        chunk_size = ctx.chunk_size
        grad_y = torch.zeros_like(v) if grad_y is None else grad_y
        grad_final = torch.zeros_like(starts[:, :, 0]) if grad_final is None else grad_final
        grads = [torch.empty_like(t) for t in (q, k, v, log_magnitude, phase)]
        grad_initial = torch.empty_like(grad_final)
        for rows, runs in _tiles(q.shape, chunk_size):
            grad_state = grad_final[rows]
            for positions in reversed(runs):
                run = _Run((rows, positions), chunk_size, q, k, v, log_magnitude, phase)
                (grad_y_run,) = _chunked((rows, positions), chunk_size, grad_y)
                start_states = starts[rows, :, positions.start // chunk_size:positions.start // chunk_size + run.chunks]
                # the gradient of the state after each chunk, right to left
                through_outputs = run.q_start.transpose(-1, -2) @ grad_y_run
                grad_ends = torch.empty_like(start_states)
                for c in reversed(range(run.chunks)):
                    grad_ends[:, :, c] = grad_state
                    grad_state = torch.addcmul(through_outputs[:, :, c], run.chunk_decay[:, :, c], grad_state)
                for full, grad in zip(grads, run.backward(grad_y_run, start_states, grad_ends)):
                    _store(full, (rows, positions), grad)
            grad_initial[rows] = grad_state
        return *grads, grad_initial, None


class _Run:
    """A tile of the inputs (some sequences' run of chunks) as (b, H, c, n, …), contiguous, and what
    both passes need. With chunk-local G = g, each chunk's start state S (2dk × dv), q', k' rotated:

        y = causal((q' e^g)(k' e^{−g})ᵀ) v + (q' e^g) S,      S ← e^{g_last} S + (k' e^{g_last − g})ᵀ v

    where e^{−g} could overflow, the causal product takes the difference form q kᵀ ⊙ e^{g_n − g_m}
    cos(Θ_n − Θ_m) (⟨q'_n, k'_m⟩ = ⟨q_n, k_m⟩ cos(Θ_n − Θ_m)); every e^{…} there is at most 1."""

    def __init__(self, tile, chunk_size, q, k, v, log_magnitude, phase):
        self.q, self.k, self.v, log_r, phase = _chunked(tile, chunk_size, q, k, v, log_magnitude, phase)
        self.chunks = self.q.shape[2]
        self.g, self.cos, self.sin = log_r.cumsum(-1), phase.cos(), phase.sin()
        last = self.g[..., -1:]
        self.from_start, self.to_end = torch.exp(self.g).unsqueeze(-1), torch.exp(last - self.g).unsqueeze(-1)
        k_rotated = rotate(self.k, self.cos, self.sin)
        self.q_start, self.k_end = rotate(self.q, self.cos, self.sin) * self.from_start, k_rotated * self.to_end
        self.chunk_decay = torch.exp(last).unsqueeze(-1)  # (B, H, c, 1, 1)
        self.above_diagonal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).triu(1)
        # a data-dependent choice (one host sync per tile on a GPU); meta tensors have no data: factored
        self.factored = q.device.type == "meta" or bool(self.g.abs().amax() < FACTORED_LOG_SPAN[q.dtype])
        if self.factored:
            self.from_end_inverse = torch.exp(-self.g).unsqueeze(-1)
            self.k_scaled = k_rotated * self.from_end_inverse

    def scores(self) -> torch.Tensor:
        """⟨q'_n, k'_m⟩ e^{g_n − g_m} for m ≤ n, 0 above the diagonal: (B, H, c, n, n)."""
        if self.factored:
            return (self.q_start @ self.k_scaled.transpose(-1, -2)).masked_fill_(self.above_diagonal, 0.0)
        return (self.q @ self.k.transpose(-1, -2)) * self._difference_mixing()[0]

    def _difference_mixing(self):
        """M = e^{g_n − g_m} cos(Θ_n − Θ_m) for m ≤ n (0 above the diagonal), and ∂M/∂(Θ_n − Θ_m)."""
        g, cos, sin = self.g, self.cos, self.sin
        decay = torch.exp((g.unsqueeze(-1) - g.unsqueeze(-2)).masked_fill_(self.above_diagonal, -math.inf))
        cos_difference = cos.unsqueeze(-1) * cos.unsqueeze(-2) + sin.unsqueeze(-1) * sin.unsqueeze(-2)
        sin_difference = sin.unsqueeze(-1) * cos.unsqueeze(-2) - cos.unsqueeze(-1) * sin.unsqueeze(-2)
        return decay * cos_difference, -decay * sin_difference

    def backward(self, grad_y, start_states, grad_ends):
        """Gradients of the run's q, k, v, log r and Θ, given those of y and of each chunk's end state."""
        grad_scores = (grad_y @ self.v.transpose(-1, -2)).masked_fill_(self.above_diagonal, 0.0)
        grad_v = self.scores().transpose(-1, -2) @ grad_y + self.k_end @ grad_ends
        grad_q_start = grad_y @ start_states.transpose(-1, -2)
        grad_k_end = self.v @ grad_ends.transpose(-1, -2)
        into_end = (grad_k_end * self.k_end).sum(-1)  # ∂/∂(g_last − g_m)
        grad_g = -into_end
        grad_g[..., -1] += into_end.sum(-1) + self.chunk_decay.flatten(-3) * (start_states * grad_ends).sum((-1, -2))
        grad_k_rotated = grad_k_end * self.to_end
        if self.factored:
            grad_q_start += grad_scores @ self.k_scaled
            grad_k_scaled = grad_scores.transpose(-1, -2) @ self.q_start
            grad_g -= (grad_k_scaled * self.k_scaled).sum(-1)
            grad_k_rotated += grad_k_scaled * self.from_end_inverse
        grad_g += (grad_q_start * self.q_start).sum(-1)
        grad_q, grad_phase = _unrotate(grad_q_start * self.from_start, self.q, self.cos, self.sin)
        grad_k, phase_through_k = _unrotate(grad_k_rotated, self.k, self.cos, self.sin)
        grad_phase += phase_through_k
        if not self.factored:
            mixing, turning = self._difference_mixing()
            products = self.q @ self.k.transpose(-1, -2)
            grad_products = grad_scores * mixing
            grad_q += grad_products @ self.k
            grad_k += grad_products.transpose(-1, -2) @ self.q
            pair, twist = grad_products * products, grad_scores * products * turning  # ∂/∂(g_n − g_m), ∂/∂(Θ_n − Θ_m)
            grad_g += pair.sum(-1) - pair.sum(-2)
            grad_phase += twist.sum(-1) - twist.sum(-2)
        grad_log_r = grad_g.flip(-1).cumsum(-1).flip(-1)  # g is the chunk-local cumulative sum of log r
        return grad_q, grad_k, grad_v, grad_log_r, grad_phase


def _tiles(shape, chunk_size: int) -> list[tuple[slice, list[slice]]]:
    """Sequences in groups and each group's positions in runs of whole chunks, so that a tile's
    (n × max(n, 2dk)) temporaries hold about TILE_ELEMENTS numbers."""
    batch, length, heads, dk = shape
    per_chunk = heads * chunk_size * max(chunk_size, 2 * dk)  # one sequence's chunk
    rows = max(1, min(batch, TILE_ELEMENTS // per_chunk))
    step = max(1, TILE_ELEMENTS // (rows * per_chunk)) * chunk_size
    runs = [slice(start, min(start + step, length)) for start in range(0, length, step)]
    return [(slice(row, min(row + rows, batch)), runs) for row in range(0, batch, rows)]


def _chunked(tile: tuple[slice, slice], chunk_size: int, *tensors):
    """Each (B, L, H, …) tensor's tile (rows, positions) as (b, H, c, n, …), contiguous; a last partial
    chunk is padded with zeros (log r = 0, k = 0: the state passes through it unchanged)."""
    out = []
    for t in tensors:
        run = t[tile]
        padding = (-run.shape[1]) % chunk_size
        if padding:
            run = F.pad(run, (0, 0) * (t.ndim - 2) + (0, padding))
        out.append(run.unflatten(1, (-1, chunk_size)).movedim(3, 1).contiguous())
    return out


def _store(full: torch.Tensor, tile: tuple[slice, slice], run: torch.Tensor) -> None:
    """Write a tile's (b, H, c, n, …) result into its place (rows, positions) of the (B, L, H, …) tensor."""
    positions = tile[1]
    full[tile] = run.movedim(1, 3).flatten(1, 2)[:, :positions.stop - positions.start]


def real_state(initial_state: torch.Tensor, dtype) -> torch.Tensor:
    """GateLoop's complex state h (B, H, dk, dv) at Θ = 0 as the rotated form's real S = [Re h; −Im h]."""
    return torch.cat([initial_state.real, -initial_state.imag], dim=-2).to(dtype)


def complex_state(state: torch.Tensor, last_phase: torch.Tensor) -> torch.Tensor:
    """The real S (B, H, 2dk, dv) after the last position, phase Θ_T (B, H), as GateLoop's h = e^{iΘ}(S_top − i S_bottom)."""
    dk = state.shape[-2] // 2
    rotation = torch.polar(torch.ones_like(last_phase), last_phase)[..., None, None]
    return rotation * torch.complex(state[..., :dk, :], -state[..., dk:, :])


def gateloop_rotated_fla(q, k, v, log_magnitude, theta, initial_state=None):
    """The same result as `gateloop_rotated_chunked`, computed by flash-linear-attention's kernel
    (models/fla_backend.py) on the rotated queries and keys; CUDA only."""
    from seqbench.models.fla_backend import simple_gla

    phase = cumulative_phase(theta)
    start = None if initial_state is None else real_state(initial_state, q.dtype)
    cos, sin = phase.cos(), phase.sin()
    y, state = simple_gla(rotate(q, cos, sin), rotate(k, cos, sin), v, g=log_magnitude, initial_state=start)
    return y, complex_state(state, phase[:, -1])
