"""Wall-clock and memory of every mixer's modes against sequence length, and GateLoop's op itself.

A speed run (kind "speed") measures one model: for each mode, first a check against
the model's float64 reference at a small odd length (a failing mode is reported, not timed), then
for each length forward (inference), forward+backward, and peak memory; per-token `step` latency
after prefills of several lengths; median and inter-quartile range over repeats after warm-up.
CUDA: device events with synchronisation and max_memory_allocated. CPU: a monotonic clock, a
fixed thread count, and the rise of the resident set's high-water mark over the case (reset before
each case), in a fresh process per mode (spawned, so an out-of-memory kill becomes a row). A case whose predicted memory
(from the growth measured at shorter lengths) or time exceeds the budget becomes a "capped" row.
"""
from __future__ import annotations

import math
import multiprocessing
import queue as queue_module
import resource
import statistics
import time
import traceback

import torch

from seqbench import models
from seqbench.bench.config import OP_IMPLEMENTATIONS, OpBenchConfig, SpeedConfig, ThroughputConfig

CHECK_LENGTH, CHECK_TOLERANCE = 33, 1e-4


# --- timing -------------------------------------------------------------------------------------
def _synchronise(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, *, device, repeats: int, warmup: int) -> list[float]:
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


def reset_peak_rss() -> None:
    """Start a new high-water mark (Linux ≥ 4.0: '5' > /proc/self/clear_refs resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_rss_bytes() -> int:
    """VmHWM: the peak resident set since the last reset_peak_rss()."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- one (model, mode), in its own process --------------------------------------------------------
def check_mode(mixer, mode, device) -> float:
    """Relative error of `mode` in float32 against the float64 reference at a small odd length."""
    import copy

    x = torch.randn(2, CHECK_LENGTH, mixer.d_model, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        y = mixer(x, mode=mode).double()
        reference = copy.deepcopy(mixer).double().reference_forward(x.double())
    return ((y - reference).norm() / reference.norm()).item()


def _predict(history: list[tuple[int, float]], length: int) -> float | None:
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


def measure_mode(config: dict, mode: str, emit) -> None:
    """Measure one mode at every length; `emit(row)` sends each row as soon as it exists."""
    run = SpeedConfig.model_validate(config)
    spec = run.speed
    torch.set_num_threads(spec.threads)
    device = torch.device("cuda" if run.device == "cuda" or (run.device == "auto" and torch.cuda.is_available()) else "cpu")
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
    if not error <= CHECK_TOLERANCE:
        for length in spec.lengths:
            emit({**base, "length": length, "measure": "forward_backward", "status": "incorrect", "check_error": error})
        return
    mixer = mixer.to(dtype)
    budget_bytes, memory, times, capped = spec.memory_budget_gb * 2**30, [], [], None
    for length in spec.lengths:
        predicted_memory, predicted_time = _predict(memory, length), _predict(times, length)
        if capped is None and predicted_memory and predicted_memory > budget_bytes:
            capped = f"capped_memory (predicted {predicted_memory / 2**30:.1f} GiB > {spec.memory_budget_gb} GiB)"
        if capped is None and predicted_time and predicted_time * (spec.repeats + spec.warmup) / 1000 > spec.time_budget_s:
            capped = f"capped_time (predicted {predicted_time / 1000:.1f} s per call)"
        if capped:
            emit({**base, "length": length, "measure": "forward_backward", "status": capped.split(" ")[0], "error": capped})
            continue
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            reset_peak_rss()
            baseline = current_rss_bytes()
        x = torch.randn(spec.batch_size, length, run.model.d_model, device=device, dtype=dtype)
        with torch.no_grad():
            forward = time_call(lambda: mixer(x, mode=mode), device=device, repeats=spec.repeats, warmup=spec.warmup)
        x.requires_grad_(True)

        def forward_backward():
            mixer(x, mode=mode).sum().backward()
            x.grad = None
            mixer.zero_grad(set_to_none=True)
            _synchronise(device)

        both = time_call(forward_backward, device=device, repeats=spec.repeats, warmup=spec.warmup)
        peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes() - baseline)
        memory.append((length, float(peak)))
        times.append((length, statistics.median(both)))
        emit({**base, "length": length, "measure": "forward", "status": "ok", "check_error": error, **summarise(forward)})
        emit({**base, "length": length, "measure": "forward_backward", "status": "ok", "check_error": error,
              "peak_memory_bytes": peak, **summarise(both)})


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


def _worker(config: dict, mode: str, rows) -> None:
    try:
        measure_mode(config, mode, rows.put)
    except Exception:  # noqa: BLE001 — reported as a row by the parent
        rows.put({"error_traceback": traceback.format_exc()})


def measure_model(config: SpeedConfig) -> list[dict]:
    """Every mode of the config's model, each in a fresh process; a dead process becomes rows."""
    context = multiprocessing.get_context("spawn")
    mixer_class = models.registry.get_class(config.model.name)
    modes = config.speed.modes or list(mixer_class.modes)
    if config.speed.measures == ["step"]:
        modes = [mixer_class.default_mode]
    rows = []
    for mode in modes:
        channel = context.Queue()
        process = context.Process(target=_worker, args=(config.model_dump(mode="json"), mode, channel))
        process.start()
        mode_rows = []
        while process.is_alive() or not channel.empty():
            try:
                mode_rows.append(channel.get(timeout=0.5))
            except queue_module.Empty:
                continue
        process.join()
        failure = next((row["error_traceback"] for row in mode_rows if "error_traceback" in row), None)
        mode_rows = [row for row in mode_rows if "error_traceback" not in row]
        done = {row["length"] for row in mode_rows if row["measure"] == "forward_backward"}
        if failure or process.exitcode:
            status = "oom" if process.exitcode in (-9, 137) else "error"
            reason = failure.strip().splitlines()[-1] if failure else f"process exited with {process.exitcode}"
            mode_rows += [{"model": config.model.name, "mode": mode, "length": length, "measure": "forward_backward",
                           "status": status, "error": reason} for length in config.speed.lengths if length not in done]
        rows += mode_rows
    return rows


# --- GateLoop's op: the implementations side by side, against the memory-traffic floor -----------------
def copy_bandwidth_bytes_per_s(numel: int, repeats: int = 5) -> float:
    """Bytes read + written per second by a tensor copy of `numel` float32 values."""
    source, target = torch.randn(numel), torch.empty(numel)
    samples = time_call(lambda: target.copy_(source), device=torch.device("cpu"), repeats=repeats, warmup=1)
    return 2 * 4 * numel / (statistics.median(samples) / 1000)


def gateloop_op_inputs(batch, length, channels, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, length, channels, 1, generator=g, dtype=dtype) for _ in range(3))
    magnitude = 0.5 + 0.5 * torch.rand(batch, length, channels, 1, generator=g, dtype=dtype)
    a = torch.polar(magnitude, torch.rand(batch, length, channels, 1, generator=g, dtype=dtype) * 2 - 1)
    return q, k, v, a


def gateloop_op_benchmark(config: OpBenchConfig, emit=None) -> list[dict]:
    """Forward and forward+backward of the GateLoop op (max heads) per implementation and length."""
    from seqbench.models.gateloop.ops import gateloop, resolve_backend
    from seqbench.models.gateloop.reference import gateloop_reference

    lengths, batch, channels, repeats, threads = (config.lengths, config.batch_size, config.channels, config.repeats,
                                                  config.threads)
    time_budget_s, check_gradients_at = config.time_budget_s, config.check_gradients_at
    emit = emit or (lambda row: None)
    torch.set_num_threads(threads)
    bandwidth = copy_bandwidth_bytes_per_s(batch * max(lengths) * channels * 4)
    rows = []
    for name in config.implementations:
        options = OP_IMPLEMENTATIONS[name]
        backend = resolve_backend(options.get("backend", "torch"), torch.device("cpu")) if options["mode"] == "recurrent" else "torch"
        history = []
        for length in lengths:
            row = {"implementation": name, "backend": backend, "length": length, "batch_size": batch, "channels": channels,
                   "threads": threads, "copy_bandwidth_gb_s": bandwidth / 1e9}
            # read q, k, v (3 floats) and a (2), write y (1): 24 bytes per element
            row["traffic_floor_ms"] = 24 * batch * length * channels / bandwidth * 1000
            predicted = _predict(history, length)
            if predicted and predicted * (repeats + 1) / 1000 > time_budget_s:
                rows.append({**row, "status": "capped_time"})
                emit(rows[-1])
                continue
            q, k, v, a = gateloop_op_inputs(batch, length, channels, seed=config.seed)
            with torch.no_grad():
                forward = time_call(lambda: gateloop(q, k, v, a, **options), device=torch.device("cpu"), repeats=repeats, warmup=1)
            leaves = [t.clone().requires_grad_(True) for t in (q, k, v, a)]

            def forward_backward():
                y, _ = gateloop(*leaves, **options)
                y.sum().backward()
                for leaf in leaves:
                    leaf.grad = None

            both = time_call(forward_backward, device=torch.device("cpu"), repeats=repeats, warmup=1)
            history.append((length, statistics.median(both)))
            rows.append({**row, "status": "ok", "forward_ms": statistics.median(forward),
                         "forward_iqr_ms": summarise(forward)["iqr_ms"], "forward_backward_ms": statistics.median(both),
                         "forward_backward_iqr_ms": summarise(both)["iqr_ms"]})
            if check_gradients_at == length:
                rows[-1].update(_gradient_error(gateloop, gateloop_reference, options, batch, length, channels))
            emit(rows[-1])
    return rows


def _gradient_error(gateloop, gateloop_reference, options, batch, length, channels) -> dict:
    """Largest relative error of the output and of d/dq, d/dk, d/dv, d/da against float64."""
    inputs = gateloop_op_inputs(batch, length, channels)
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    weight = torch.randn(batch, length, channels, 1, generator=torch.Generator().manual_seed(1))
    y, _ = gateloop(*leaves, **options)
    (y * weight).sum().backward()
    doubles = [t.to(torch.complex128 if t.is_complex() else torch.float64).requires_grad_(True) for t in inputs]
    y_ref, _ = gateloop_reference(*doubles)
    (y_ref * weight.double()).sum().backward()
    errors = [((y.double() - y_ref).norm() / y_ref.norm()).item()]
    errors += [((leaf.grad.to(ref.grad.dtype) - ref.grad).norm() / ref.grad.norm()).item() for leaf, ref in zip(leaves, doubles)]
    return {"max_relative_error_vs_float64": max(errors)}


# --- the whole LM's training step: what a researcher waits for ---------------------------------------
def training_throughput(config: ThroughputConfig, emit=None) -> list[dict]:
    """Median optimizer-step time, tokens/s and peak memory of the LM at each length, tokens per
    step constant. Random tokens: the work does not depend on the data. Peak memory: CUDA's
    max_memory_allocated, or on CPU the process's resident high-water mark during the length's
    steps (reset before them; model, optimizer state and allocator caches included — a rise over a
    baseline reads ~0 once the allocator holds the memory of an earlier length)."""
    import torch.nn.functional as F

    emit = emit or (lambda row: None)
    torch.set_num_threads(config.threads)
    device = torch.device("cuda" if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()) else "cpu")
    torch.manual_seed(config.seed)
    model = config.model.build(vocab_size=config.vocab_size, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    name = config.model.name if isinstance(config.model.name, str) else "+".join(config.model.name)
    layers = model.layers()
    base = {"model": name, "parameters": model.num_parameters(), "d_model": config.model.d_model,
            "mode": layers[0]["mode"], "backend": layers[0]["backend"], "threads": config.threads, "device": str(device),
            "tokens_per_step": config.tokens_per_step}
    rows, history = [], []
    for length in config.lengths:
        batch = config.tokens_per_step // length
        row = {**base, "length": length, "batch_size": batch}
        predicted = _predict(history, length)
        if predicted and predicted * (config.repeats + config.warmup) / 1000 > config.time_budget_s:
            rows.append({**row, "status": "capped_time"})
            emit(rows[-1])
            continue
        tokens = torch.randint(0, config.vocab_size, (batch, length + 1), generator=torch.Generator().manual_seed(length))
        inputs, targets = tokens[:, :-1].to(device), tokens[:, 1:].to(device)

        def step():
            loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            _synchronise(device)

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            reset_peak_rss()
        try:
            samples = time_call(step, device=device, repeats=config.repeats, warmup=config.warmup)
        except torch.OutOfMemoryError as error:
            rows.append({**row, "status": "oom", "error": str(error).splitlines()[0]})
            emit(rows[-1])
            continue
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
        history.append((length, statistics.median(samples)))
        rows.append({**row, "status": "ok", **summarise(samples), "tokens_per_s": batch * length / (statistics.median(samples) / 1000),
                     "peak_memory_bytes": peak})
        emit(rows[-1])
    return rows
