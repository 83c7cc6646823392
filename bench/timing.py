"""How seqbench times and sizes one case, and the loop over lengths every benchmark shares.

CUDA: device events with synchronisation, and `max_memory_allocated`. CPU: a monotonic clock, and
the resident set's high-water mark (VmHWM), reset before each case. Every benchmark walks its
lengths shortest first through `over_lengths`: it predicts each case's time and memory from those
already measured, turns a case over its budget into a capped row (and every longer one: cost only
grows with length), and emits each row as soon as it exists.
"""
from __future__ import annotations

import math
import resource
import statistics
import time
from collections.abc import Callable

import torch

from seqbench.bench.stop import StopRequest


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, *, device: torch.device, repeats: int, warmup: int) -> list[float]:
    """Milliseconds per call, `repeats` samples after `warmup` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            samples.append(start.elapsed_time(end))
        else:
            began = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - began) * 1000)
    return samples


def summarise(samples: list[float]) -> dict:
    quartiles = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else [samples[0]] * 3
    return {"median_ms": statistics.median(samples), "iqr_ms": quartiles[2] - quartiles[0], "repeats": len(samples)}


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    """VmHWM: the peak resident set since the last reset (PeakMemory.start)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory(device: torch.device) -> dict:
    """A whole run's peak, the one measure every run records: CUDA's allocator peak, or the
    process's resident high-water mark (VmHWM, what PeakMemory reads per case)."""
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "peak_memory_kind": "cuda_allocated"}
    return {"peak_memory_bytes": peak_rss_bytes(), "peak_memory_kind": "cpu_max_rss"}


class PeakMemory:
    """The peak memory of one case: CUDA's allocator peak, or the process's resident high-water mark
    (Linux ≥ 4.0: writing '5' to /proc/self/clear_refs resets VmHWM)."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            self.baseline = torch.cuda.memory_allocated(device)
        else:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            self.baseline = current_rss_bytes()

    def peak_bytes(self) -> int:
        """The peak since the start, everything the process held included."""
        return torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else peak_rss_bytes()

    def rise_bytes(self) -> int:
        """What the case added at its peak over what was held when it started (CUDA: the allocator's
        peak, which counts the case's own tensors only)."""
        return self.peak_bytes() if self.device.type == "cuda" else self.peak_bytes() - self.baseline


def predict(history: list[tuple[int, float]], length: int) -> float | None:
    """Extrapolate a quantity with the power law fitted to its last two measurements, its exponent
    clamped to [1, 2] (no mode here grows faster than quadratically; tiny, noisy measurements would
    otherwise give absurd exponents); from a single measurement assume quadratic growth, so one
    point never lets an O(L²) case run far past the budget."""
    if not history or history[-1][1] <= 0:
        return None
    l1, v1 = history[-1]
    exponent = 2.0
    if len(history) >= 2 and history[-2][1] > 0:
        l0, v0 = history[-2]
        exponent = min(2.0, max(1.0, math.log(v1 / v0) / math.log(l1 / l0)))
    return v1 * (length / l1) ** exponent


# measure(length, memory) → (rows, median ms of the budgeted call or None, peak bytes or None)
Measure = Callable[[int, PeakMemory], tuple[list[dict], float | None, float | None]]


def over_lengths(lengths: list[int], measure: Measure, *, device: torch.device, calls: int, time_budget_s: float,
                 capped_row: Callable[[int, str, str], dict], memory_budget_bytes: float | None = None,
                 emit: Callable[[dict], None] | None = None, stop: StopRequest | None = None) -> list[dict]:
    """Every length through `measure`, shortest first; `calls` is how many timed calls a case makes
    (warm-up and repeats), so the time budget bounds the whole case. A stop request is acted on
    between cases (nothing to checkpoint: the unfinished run is measured again on re-launch)."""
    rows, times, peaks, capped = [], [], [], None
    for length in lengths:
        if stop is not None:
            stop.at_boundary(lambda: None)
        if capped is None:
            capped = over_budget(predict(peaks, length), predict(times, length), calls=calls, time_budget_s=time_budget_s,
                                 memory_budget_bytes=memory_budget_bytes)
        if capped is not None:
            new = [capped_row(length, *capped)]
        else:
            new, time_ms, peak = measure(length, PeakMemory(device))
            if time_ms is not None:
                times.append((length, time_ms))
            if peak is not None:
                peaks.append((length, float(peak)))
        for row in new:
            if emit is not None:
                emit(row)
            rows.append(row)
    return rows


def over_budget(memory_bytes: float | None, time_ms: float | None, *, calls: int, time_budget_s: float,
                memory_budget_bytes: float | None) -> tuple[str, str] | None:
    """(status, reason) of a case predicted over a budget, else None."""
    if memory_budget_bytes is not None and memory_bytes and memory_bytes > memory_budget_bytes:
        return "capped_memory", f"capped_memory (predicted {memory_bytes / 2**30:.1f} GiB > {memory_budget_bytes / 2**30:g} GiB)"
    if time_ms and time_ms * calls / 1000 > time_budget_s:
        return "capped_time", f"capped_time (predicted {time_ms / 1000:.1f} s per call)"
    return None
