"""Wall-clock and memory of one mixer's modes against sequence length (run kind "speed").

For each mode, first a check against the model's float64 reference at a small odd length (a
failing mode is reported, not timed), then for each length forward (inference), forward+backward
and peak memory (timing.py says how each is measured); per-token `step` latency after prefills of
several lengths. Each mode runs in a fresh spawned process, so one mode's allocations never inflate
another's peak and a memory kill takes only that mode. A worker dies with its parent (a parent-
death signal), and a stop request (SIGTERM, Slurm's preemption) ends the measurement at the next
case boundary with the run left unfinished, so a re-launch measures it again.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queue_module
import signal
import statistics
import traceback

import torch

from seqbench import models
from seqbench.bench.config import SpeedConfig
from seqbench.bench.device import resolve_device
from seqbench.bench.stop import StopRequest
from seqbench.bench.timing import PeakMemory, over_lengths, summarise, synchronise, time_call
from seqbench.core import RunStopped
from seqbench.models.conformance import REFERENCE_TOLERANCE, reference_error

CHECK_LENGTH = 33  # a small odd length: every chunked mode's ragged last chunk is checked too


def check_mode(mixer, mode, device) -> float:
    """Relative error of `mode` in float32 against the float64 reference (models/conformance.py)."""
    x = torch.randn(2, CHECK_LENGTH, mixer.d_model, generator=torch.Generator().manual_seed(0)).to(device)
    return reference_error(mixer, mode, x)


def default_mode(config: SpeedConfig) -> str:
    """The mode the configured mixer runs by default, from its options (before any mixer exists)."""
    mixer_class = models.registry.get_class(config.model.name)
    return mixer_class.default_mode_for({"d_model": config.model.d_model, **config.model.options})


def measure_mode(config: dict, mode: str, emit) -> None:
    """Measure one mode at every length; `emit(row)` sends each row as soon as it exists."""
    run = SpeedConfig.model_validate(config)
    spec = run.speed
    torch.set_num_threads(spec.threads)
    device = resolve_device(run.device)
    dtype = getattr(torch, spec.dtype)
    torch.manual_seed(run.seed)
    name = run.model.name
    mixer = models.build(name, d_model=run.model.d_model, **run.model.options).to(device)
    base = {"model": name, "mode": mode, "backend": mixer.backend_used(mode), "batch_size": spec.batch_size,
            "d_model": run.model.d_model, "dtype": spec.dtype, "device": str(device)}
    if "step" in spec.measures and mode == mixer.default_mode:
        measure_step(mixer.to(dtype), base, spec, device, dtype, emit)
        mixer = mixer.float()
    if not {"forward", "forward_backward"} & set(spec.measures):
        return
    error = check_mode(mixer, mode, device)
    if not error <= REFERENCE_TOLERANCE:
        for length in spec.lengths:
            emit({**base, "length": length, "measure": "forward_backward", "status": "incorrect", "check_error": error})
        return
    mixer = mixer.to(dtype)

    def measure(length: int, memory: PeakMemory):
        x = torch.randn(spec.batch_size, length, run.model.d_model, device=device, dtype=dtype)
        with torch.no_grad():
            forward = time_call(lambda: mixer(x, mode=mode), device=device, repeats=spec.repeats, warmup=spec.warmup)
        x.requires_grad_(True)

        def forward_backward():
            mixer(x, mode=mode).sum().backward()
            x.grad = None
            mixer.zero_grad(set_to_none=True)
            synchronise(device)

        both = time_call(forward_backward, device=device, repeats=spec.repeats, warmup=spec.warmup)
        peak = memory.rise_bytes()
        rows = [{**base, "length": length, "measure": "forward", "status": "ok", "check_error": error, **summarise(forward)},
                {**base, "length": length, "measure": "forward_backward", "status": "ok", "check_error": error,
                 "peak_memory_bytes": peak, **summarise(both)}]
        return rows, statistics.median(both), peak

    over_lengths(spec.lengths, measure, device=device, calls=spec.repeats + spec.warmup, time_budget_s=spec.time_budget_s,
                 memory_budget_bytes=spec.memory_budget_gb * 2**30, emit=emit,
                 capped_row=lambda length, status, reason: {**base, "length": length, "measure": "forward_backward",
                                                            "status": status, "error": reason})


@torch.no_grad()
def measure_step(mixer, base, spec, device, dtype, emit) -> None:
    """Per-token decode latency after prefills of each length (O(1) for recurrent state, O(context)
    for a KV cache). The prefill lengths are timed interleaved, one call each per round, so clock
    or cache drift during the measurement falls on all of them alike."""
    states, x_t = {}, torch.randn(1, mixer.d_model, device=device, dtype=dtype)
    for prefill in spec.decode_prefills:
        try:
            _, states[prefill] = mixer(torch.randn(1, prefill, mixer.d_model, device=device, dtype=dtype), return_state=True)
        except torch.OutOfMemoryError as error:
            emit({**base, "length": prefill, "measure": "step", "status": "oom", "error": str(error).splitlines()[0]})
    samples = {prefill: [] for prefill in states}
    rounds = max(40, spec.repeats)
    for round_index in range(rounds + 5):
        for prefill, state in states.items():
            sample = time_call(lambda: mixer.step(x_t, state), device=device, repeats=1, warmup=0)
            if round_index >= 5:  # the first rounds warm up
                samples[prefill] += sample
    for prefill, times in samples.items():
        emit({**base, "length": prefill, "measure": "step", "status": "ok", **summarise(times)})


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel sends SIGKILL to this process when its parent dies (PR_SET_PDEATHSIG), so a
    killed `seqbench speed` leaves no orphaned worker timing on. A parent that died while this
    worker was still importing (before the request) is seen as a changed parent pid."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent's stop handling still ends its workers
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _worker(config: dict, mode: str, rows, parent: int) -> None:
    _die_with_parent(parent)
    try:
        measure_mode(config, mode, rows.put)
    except Exception:  # noqa: BLE001 — reported as a row by the parent
        rows.put({"error_traceback": traceback.format_exc()})


def oom_kills() -> int | None:
    """The kernel's count of out-of-memory kills in this process's memory cgroup (v2 memory.events,
    v1 memory.oom_control), or None where neither is readable."""
    try:
        cgroup = open("/proc/self/cgroup").read().splitlines()
    except OSError:
        return None
    for line in cgroup:
        _, controllers, path = line.split(":", 2)
        if controllers in ("", "memory") or "memory" in controllers.split(","):
            for candidate in (f"/sys/fs/cgroup{path}/memory.events", f"/sys/fs/cgroup/memory{path}/memory.oom_control",
                              "/sys/fs/cgroup/memory.events"):
                try:
                    for entry in open(candidate).read().splitlines():
                        key, _, value = entry.partition(" ")
                        if key == "oom_kill":
                            return int(value)
                except (OSError, ValueError):
                    continue
    return None


class WorkerKilled(RunStopped):
    """A speed worker died of a signal with no evidence that it was the out-of-memory killer."""


def measure_model(config: SpeedConfig, stop: StopRequest | None = None) -> list[dict]:
    """Every mode of the config's model, each in a fresh process. A worker that raised becomes error
    rows; one the kernel's OOM killer ended (its cgroup counter rose) becomes oom rows; one killed by
    anything else (an operator, Slurm after the grace period) raises WorkerKilled, leaving the run
    unfinished."""
    context = multiprocessing.get_context("spawn")
    mixer_class = models.registry.get_class(config.model.name)
    modes = config.speed.modes or list(mixer_class.modes)
    if config.speed.measures == ["step"]:
        modes = [default_mode(config)]
    rows = []
    for mode in modes:
        channel = context.Queue()
        kills_before = oom_kills()
        process = context.Process(target=_worker, args=(config.model_dump(mode="json"), mode, channel, os.getpid()))
        process.start()
        mode_rows = []
        try:
            while process.is_alive() or not channel.empty():
                if stop is not None and stop.pending:
                    process.kill()  # a case boundary for the run: what this mode measured so far is redone
                    process.join()
                    stop.at_boundary(lambda: None)
                try:
                    mode_rows.append(channel.get(timeout=0.5))
                except queue_module.Empty:
                    continue
        finally:
            if process.is_alive():
                process.kill()
            process.join()
        failure = next((row["error_traceback"] for row in mode_rows if "error_traceback" in row), None)
        mode_rows = [row for row in mode_rows if "error_traceback" not in row]
        done = {row["length"] for row in mode_rows if row["measure"] == "forward_backward"}
        if process.exitcode is not None and process.exitcode < 0 and not failure:
            kills_after = oom_kills()
            if kills_before is None or kills_after is None or kills_after <= kills_before:
                raise WorkerKilled(f"the speed worker for {config.model.name}/{mode} was killed by signal {-process.exitcode} "
                                   "and the kernel recorded no out-of-memory kill; the run is left unfinished, so a "
                                   "re-launch measures it again")
        if failure or process.exitcode:
            status = "oom" if process.exitcode is not None and process.exitcode < 0 else "error"
            reason = failure.strip().splitlines()[-1] if failure else f"killed by the out-of-memory killer (signal {-process.exitcode})"
            mode_rows += [{"model": config.model.name, "mode": mode, "length": length, "measure": "forward_backward",
                           "status": status, "error": reason} for length in config.speed.lengths if length not in done]
        rows += mode_rows
    return rows
