"""The whole LM's optimizer step against length, tokens per step held constant (run kind
"throughput"): what a researcher waits for. Random tokens: the work does not depend on the data.
Peak memory: CUDA's allocator peak, or on CPU the process's resident high-water mark during the
length's steps (model, optimizer state and allocator caches included: a rise over a baseline reads
~0 once the allocator holds the memory of an earlier length)."""
from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from seqbench.bench.config import ThroughputConfig
from seqbench.bench.device import resolve_device
from seqbench.bench.stop import StopRequest
from seqbench.bench.timing import over_lengths, summarise, synchronise, time_call


def training_throughput(config: ThroughputConfig, stop: StopRequest | None = None, emit=None) -> list[dict]:
    """Median optimizer-step time, tokens/s and peak memory of the LM at each length."""
    torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = config.model.build(vocab_size=config.vocab_size, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    name = config.model.name if isinstance(config.model.name, str) else "+".join(config.model.name)
    layers = model.layers()
    base = {"model": name, "parameters": model.num_parameters(), "d_model": config.model.d_model,
            "mode": layers[0]["mode"], "backend": layers[0]["backend"], "threads": config.threads, "device": str(device),
            "tokens_per_step": config.tokens_per_step}

    def row(length):
        return {**base, "length": length, "batch_size": config.tokens_per_step // length}

    def measure(length, memory):
        batch = config.tokens_per_step // length
        tokens = torch.randint(0, config.vocab_size, (batch, length + 1), generator=torch.Generator().manual_seed(length))
        inputs, targets = tokens[:, :-1].to(device), tokens[:, 1:].to(device)

        def step():
            loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            synchronise(device)

        try:
            samples = time_call(step, device=device, repeats=config.repeats, warmup=config.warmup)
        except torch.OutOfMemoryError as error:
            return [{**row(length), "status": "oom", "error": str(error).splitlines()[0]}], None, None
        median = statistics.median(samples)
        return [{**row(length), "status": "ok", **summarise(samples), "tokens_per_s": batch * length / (median / 1000),
                 "peak_memory_bytes": memory.peak_bytes()}], median, None

    return over_lengths(config.lengths, measure, device=device, calls=config.repeats + config.warmup,
                        time_budget_s=config.time_budget_s, emit=emit, stop=stop,
                        capped_row=lambda length, status, reason: {**row(length), "status": status})
