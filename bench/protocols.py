"""The published protocols seqbench runs, each defined here and nowhere else: MAD's six tasks (Poli et
al. 2024; athms/mad-lab configs/tasks/*.yml and its training setup) and Zoology's MQAR grid (Arora et
al. 2023, Figure 2). Each has its source's scale and named reductions for smaller machines; a sweep
file names one (`protocol = "mad/memorization"`, `protocol = "mqar/cpu"`) and `seqbench compare`
builds its mad and mqar suites from the same functions (docs/sources.md, "MAD" and "Zoology").
"""
from __future__ import annotations

import copy
from typing import Any

# MAD's baseline setting per task and the difficulty changes it varies one at a time (mad-lab
# configs/tasks/<task>.yml); memorization's 256 examples are its baseline, not 12,800.
MAD_TASKS: dict[str, dict[str, dict[str, Any]]] = {
    "memorization": {"baseline": {"vocab_size": 256, "seq_len": 32, "num_train_examples": 256},
                     "changes": {"vocab_size": [512, 1024, 2048, 4096, 8192]}},
    "compression": {"baseline": {"vocab_size": 16, "seq_len": 32, "num_train_examples": 12_800},
                    "changes": {"vocab_size": [32, 64, 128], "seq_len": [64, 128, 256], "num_train_examples": [6400, 3200, 1600, 800]}},
    "in_context_recall": {"baseline": {"vocab_size": 16, "seq_len": 128, "num_train_examples": 12_800},
                          "changes": {"vocab_size": [32, 64, 128], "seq_len": [256, 512, 1024],
                                      "num_train_examples": [6400, 3200, 1600, 800]}},
    "fuzzy_in_context_recall": {"baseline": {"vocab_size": 16, "seq_len": 128, "num_train_examples": 12_800, "k_motif_size": 3,
                                             "v_motif_size": 3},
                                "changes": {"vocab_size": [32, 64, 128], "seq_len": [256, 512, 1024],
                                            "num_train_examples": [6400, 3200, 1600, 800]}},
    "noisy_in_context_recall": {"baseline": {"vocab_size": 32, "noise_vocab_size": 16, "seq_len": 128, "num_train_examples": 12_800,
                                             "frac_noise": 0.2},
                                "changes": {"vocab_size": [48, 80, 144], "seq_len": [256, 512, 1024],
                                            "num_train_examples": [6400, 3200, 1600, 800], "frac_noise": [0.4, 0.6, 0.8]}},
    "selective_copying": {"baseline": {"vocab_size": 16, "seq_len": 256, "num_tokens_to_copy": 16, "num_train_examples": 12_800},
                          "changes": {"vocab_size": [32, 64, 128], "seq_len": [512, 1024], "num_train_examples": [6400, 3200, 1600, 800],
                                      "num_tokens_to_copy": [32, 64, 96]}},
}
# MAD's training: 2 blocks of mixer + MLP (ratio 4) at width 128, batch 128, 200 epochs, Adam with a
# cosine schedule to 0.002 of the peak, no warm-up, lr × weight decay, best on validation. `cpu` and
# `quick` are seqbench's reductions (narrower, fewer steps, a grid moved up to suit the short
# schedule: three points so a choice at an edge shows); each departure is named in the report.
MAD_SCALES: dict[str, dict[str, Any]] = {
    "mad": {"d_model": 128, "batch_size": 128, "epochs": 200, "steps": None, "lrs": [1e-4, 5e-4, 1e-3], "weight_decays": [0.0, 0.1],
            "test_examples": 1280, "difficulty": True, "evaluations": 20},
    "cpu": {"d_model": 64, "batch_size": 32, "epochs": None, "steps": 1000, "lrs": [1e-3, 3e-3, 1e-2], "weight_decays": [0.0],
            "test_examples": 1280, "difficulty": False, "evaluations": 5},
    "quick": {"d_model": 64, "batch_size": 32, "epochs": None, "steps": 30, "lrs": [3e-3, 1e-2], "weight_decays": [0.0],
              "test_examples": 256, "difficulty": False, "evaluations": 5},
}
# cheapest first (per step on the CPU), so that a suite stopped part-way has finished the most tasks
MAD_ORDER = ("memorization", "compression", "in_context_recall", "fuzzy_in_context_recall", "noisy_in_context_recall",
             "selective_copying")

# Zoology's Figure 2 grid: (L, pairs) cells zipped, widths × lrs, 2 layers without MLP, weight decay
# 0.1, cosine; vocab 8,192. `cpu` keeps the two shortest cells, the two narrowest widths and the three
# largest lrs at vocab 512 for 500 steps (at 8,192, 500 steps left GateLoop at 0.000: each key seen
# about 30 times); `quick` is one width at 30 steps.
MQAR_SCALES: dict[str, dict[str, Any]] = {
    "zoology": {"steps": 20_000, "lrs": [1e-4, 4.6e-4, 2.2e-3, 1e-2], "widths": [64, 128, 256, 512], "vocab_size": 8192,
                "cells": [(64, 4), (128, 8), (256, 16), (512, 64)], "evaluations": 40, "examples": (1000, 3000)},
    "cpu": {"steps": 500, "lrs": [4.6e-4, 2.2e-3, 1e-2], "widths": [64, 128], "vocab_size": 512, "cells": [(64, 4), (128, 8)],
            "evaluations": 5, "examples": (500, 1000)},
    "quick": {"steps": 30, "lrs": [3e-3, 1e-2], "widths": [64], "vocab_size": 512, "cells": [(64, 4), (128, 8)],
              "evaluations": 5, "examples": (500, 1000)},
}
MQAR_BATCH_SIZE = 64


def _every(steps: int, evaluations: int = 5) -> dict[str, int]:
    every = max(steps // evaluations, 10)
    return {"eval_every": every, "checkpoint_every": every}


def mad_sweep(task: str, scale: str, *, mixers: list[str] | None = None, name: str | None = None) -> dict[str, Any]:
    """MAD `task` at `scale` as a sweep spec (bench/sweep.expand): the baseline setting × lr × weight
    decay per mixer, and at MAD's own scale each difficulty change one at a time ([vary])."""
    if task not in MAD_TASKS:
        raise ValueError(f"unknown MAD task {task!r}; valid: {', '.join(MAD_TASKS)}")
    if scale not in MAD_SCALES:
        raise ValueError(f"unknown MAD scale {scale!r}; valid: {', '.join(MAD_SCALES)}")
    s, spec = MAD_SCALES[scale], MAD_TASKS[task]
    steps = s["steps"] or s["epochs"] * spec["baseline"]["num_train_examples"] // s["batch_size"]
    sweep = {"name": name or f"mad-{task.replace('_', '-')}", "seeds": [0],
             "grid": {**({"model.name": list(mixers)} if mixers else {}), "optimizer.lr": s["lrs"],
                      "optimizer.weight_decay": s["weight_decays"]},
             "base": {"steps": steps, "batch_size": s["batch_size"], **_every(steps, s["evaluations"]), "threads": 1,
                      "early_stop": {"metric": "accuracy", "threshold": 0.99},
                      "optimizer": {"schedule": "cosine", "min_lr_ratio": 0.002, "warmup_steps": 0},
                      "model": {"d_model": s["d_model"], "n_layers": 2, "mlp_ratio": 4,
                                **({"backbone": "autoencoder"} if task == "compression" else {})},
                      "task": {"name": f"mad_{task}", "options": {**spec["baseline"], "num_test_examples": s["test_examples"]}}}}
    if s["difficulty"]:
        sweep["vary"] = {f"task.options.{option}": values for option, values in spec["changes"].items()}
    return copy.deepcopy(sweep)


def mqar_sweep(scale: str, *, mixers: list[str] | None = None, name: str | None = None, seeds=(0,)) -> dict[str, Any]:
    """Zoology's MQAR grid at `scale` as a sweep spec: every (L, pairs) cell × width × lr per mixer."""
    if scale not in MQAR_SCALES:
        raise ValueError(f"unknown MQAR scale {scale!r}; valid: {', '.join(MQAR_SCALES)}")
    q = MQAR_SCALES[scale]
    return copy.deepcopy({
        "name": name or f"mqar-zoology{'' if scale == 'zoology' else '-' + scale}", "seeds": list(seeds),
        "grid": {**({"model.name": list(mixers)} if mixers else {}), "model.d_model": q["widths"], "optimizer.lr": q["lrs"]},
        "zip": {"task.options.seq_len": [length for length, _ in q["cells"]], "task.options.num_pairs": [pairs for _, pairs in q["cells"]]},
        "base": {"steps": q["steps"], "batch_size": MQAR_BATCH_SIZE, **_every(q["steps"], q["evaluations"]), "threads": 1,
                 "early_stop": {"metric": "accuracy", "threshold": 0.99},
                 "optimizer": {"weight_decay": 0.1, "schedule": "cosine"}, "model": {"n_layers": 2, "mlp_ratio": 0},
                 "task": {"name": "mqar", "options": {"vocab_size": q["vocab_size"], "validation_examples": q["examples"][0],
                                                      "test_examples": q["examples"][1]}}}})


PROTOCOLS = {**{f"mad/{task}": ("mad", task) for task in MAD_TASKS}, **{f"mqar/{scale}": ("mqar", scale) for scale in MQAR_SCALES}}


def protocol_sweep(protocol: str, *, scale: str | None = None, mixers: list[str] | None = None, name: str | None = None) -> dict[str, Any]:
    """A sweep file's `protocol = "…"`: "mad/<task>" (at MAD's scale unless `scale`) or "mqar/<scale>"."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    kind, which = PROTOCOLS[protocol]
    if kind == "mad":
        return mad_sweep(which, scale or "mad", mixers=mixers, name=name)
    if scale is not None:
        raise ValueError(f"protocol {protocol!r} names its scale; 'scale' applies to the MAD protocols ({', '.join(MAD_SCALES)})")
    return mqar_sweep(which, mixers=mixers, name=name)
