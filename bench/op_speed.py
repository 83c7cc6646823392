"""GateLoop's op (max heads) per implementation and length, against the memory-traffic floor (run
kind "gateloop_op"): forward and forward+backward, on CPU, one process."""
from __future__ import annotations

import statistics

import torch

from seqbench.bench.config import OpBenchConfig
from seqbench.bench.stop import StopRequest
from seqbench.bench.timing import over_lengths, summarise, time_call
from seqbench.models.gateloop.implementations import IMPLEMENTATIONS, error_against_float64, op_inputs
from seqbench.models.gateloop.ops import gateloop, resolve_backend

CPU = torch.device("cpu")


def copy_bandwidth_bytes_per_s(numel: int, repeats: int = 5) -> float:
    """Bytes read + written per second by a tensor copy of `numel` float32 values."""
    source, target = torch.randn(numel), torch.empty(numel)
    samples = time_call(lambda: target.copy_(source), device=CPU, repeats=repeats, warmup=1)
    return 2 * 4 * numel / (statistics.median(samples) / 1000)


def gateloop_op_benchmark(config: OpBenchConfig, stop: StopRequest | None = None, emit=None) -> list[dict]:
    batch, channels, repeats = config.batch_size, config.channels, config.repeats
    torch.set_num_threads(config.threads)
    bandwidth = copy_bandwidth_bytes_per_s(batch * max(config.lengths) * channels * 4)
    rows = []
    for name in config.implementations:
        options = IMPLEMENTATIONS[name]
        backend = resolve_backend(options.get("backend", "torch"), CPU) if options["mode"] == "recurrent" else "torch"

        def base(length, name=name, backend=backend):
            # read q, k, v (3 floats) and a (2), write y (1): 24 bytes per element
            return {"implementation": name, "backend": backend, "length": length, "batch_size": batch, "channels": channels,
                    "threads": config.threads, "copy_bandwidth_gb_s": bandwidth / 1e9,
                    "traffic_floor_ms": 24 * batch * length * channels / bandwidth * 1000}

        def measure(length, memory, options=options, base=base):
            q, k, v, a = op_inputs(batch, length, channels, seed=config.seed)
            with torch.no_grad():
                forward = time_call(lambda: gateloop(q, k, v, a, **options), device=CPU, repeats=repeats, warmup=1)
            leaves = [t.clone().requires_grad_(True) for t in (q, k, v, a)]

            def forward_backward():
                y, _ = gateloop(*leaves, **options)
                y.sum().backward()
                for leaf in leaves:
                    leaf.grad = None

            both = time_call(forward_backward, device=CPU, repeats=repeats, warmup=1)
            row = {**base(length), "status": "ok", "forward_ms": statistics.median(forward),
                   "forward_iqr_ms": summarise(forward)["iqr_ms"], "forward_backward_ms": statistics.median(both),
                   "forward_backward_iqr_ms": summarise(both)["iqr_ms"]}
            if config.check_gradients_at == length:
                row["max_relative_error_vs_float64"] = error_against_float64(options, batch, length, channels)
            return [row], statistics.median(both), None

        rows += over_lengths(config.lengths, measure, device=CPU, calls=repeats + 1, time_budget_s=config.time_budget_s,
                             capped_row=lambda length, status, reason, base=base: {**base(length), "status": status},
                             emit=emit, stop=stop)
    return rows
