"""One command for a GPU node (`make gpu-check`, `seqbench gpu-check`): what this CPU-only project
cannot test anywhere else, measured and written to `results/gpu/` with its provenance.

    numerics.csv    every mixer and mode on the device in float32 against its float64 reference
                    (outputs and the input's gradient)
    kernels.csv     each optional CUDA kernel (fla's chunk kernels for GateLoop, RetNet, linear
                    attention, GLA, Gated DeltaNet and RWKV-7; mamba-ssm's SSD for Mamba-2) against
                    the PyTorch chunked mode with the same weights, where its package is installed
    bf16.csv        a training step per mixer under bf16 autocast against float32
    speed.csv …     the speed sweep at GPU lengths, every mixer's modes (analysis/report.speed_report)
    throughput.csv  the LM training step per mixer at matched parameters
    pytest.txt      the tests marked `cuda` (they skip on a machine without one)
    README.md       device, torch, CUDA, commit, packages; what each file holds and what was skipped

It installs nothing and needs no network: what is not importable is recorded as not measured.
`--device cpu --quick` runs the same code at tiny sizes (CI does, so the GPU path cannot rot).
"""
from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from seqbench import models
from seqbench.analysis.report import speed_report
from seqbench.bench.config import parse_run_config
from seqbench.bench.device import resolve_device
from seqbench.bench.provenance import provenance
from seqbench.bench.runner import run_in_foreground
from seqbench.core import atomic_write_csv, atomic_write_json, atomic_write_text
from seqbench.models.backends import try_import
from seqbench.models.conformance import REFERENCE_TOLERANCE, relative_error

# every optional CUDA kernel a mixer can call: (mixer, backend, the module it imports, options)
CUDA_KERNELS = (("gateloop", "fla", "fla.ops.simple_gla", {"heads": 4}), ("retnet", "fla", "fla.ops.simple_gla", {"heads": 4}),
                ("linear_attention", "fla", "fla.ops.simple_gla", {"heads": 4}), ("gla", "fla", "fla.ops.gla", {}),
                ("gated_deltanet", "fla", "fla.ops.gated_delta_rule", {}), ("rwkv7", "fla", "fla.ops.rwkv7", {}),
                ("mamba2", "mamba_ssm", "mamba_ssm.ops.triton.ssd_combined", {}))
SIZES = {  # (d_model, batch, length) of the checks; the sweeps' lengths
    "full": {"check": (256, 4, 1024), "speed_lengths": [1024, 4096, 16384, 32768], "throughput_lengths": [1024, 4096, 16384],
             "tokens_per_step": 65536, "memory_budget_gb": 60.0, "time_budget_s": 5.0},
    "quick": {"check": (16, 2, 33), "speed_lengths": [16, 32], "throughput_lengths": [16, 32], "tokens_per_step": 64,
              "memory_budget_gb": 2.0, "time_budget_s": 5.0},
}


def numerics(device: torch.device, size) -> pd.DataFrame:
    """Every mixer and mode in float32 on the device against its float64 reference on the CPU."""
    d_model, batch, length = size
    rows = []
    for name in models.available():
        torch.manual_seed(0)
        mixer = models.build(name, d_model=d_model)
        x = torch.randn(batch, length, d_model, dtype=torch.float64)
        x_ref = x.clone().requires_grad_(True)
        y_ref = copy.deepcopy(mixer).double().reference_forward(x_ref)
        y_ref.square().sum().backward()
        for mode in models.registry.get_class(name).modes:
            on_device = copy.deepcopy(mixer).to(device)
            x_dev = x.float().to(device).requires_grad_(True)
            try:
                y = on_device(x_dev, mode=mode)
                y.square().sum().backward()
                errors = {"output_error": relative_error(y, y_ref), "input_grad_error": relative_error(x_dev.grad, x_ref.grad)}
                row = {**errors, "status": "ok" if max(errors.values()) <= REFERENCE_TOLERANCE else "above tolerance"}
            except Exception as error:  # noqa: BLE001 — recorded: a mode that fails on this device is a finding
                row = {"status": "error", "error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}
            rows.append({"model": name, "mode": mode, "backend": on_device.backend_used(mode), "device": str(device), **row})
    return pd.DataFrame(rows)


def kernels_against_pytorch(device: torch.device, size) -> pd.DataFrame:
    """Each optional CUDA kernel's chunked mode against the same layer's PyTorch chunked mode (same
    weights): output and input-gradient errors; a kernel not importable here is "not measured"."""
    d_model, batch, length = size
    rows = []
    for name, backend, module, options in CUDA_KERNELS:
        row = {"model": name, "backend": backend}
        if device.type != "cuda" or try_import(module) is None:
            rows.append({**row, "status": "not measured", "error": "needs CUDA" if device.type != "cuda" else f"{module} is not importable"})
            continue
        torch.manual_seed(0)
        fast = models.build(name, d_model=d_model, backend=backend, **options).to(device)
        pure = models.build(name, d_model=d_model, **options).to(device)
        pure.load_state_dict(fast.state_dict())
        x = torch.randn(batch, length, d_model, device=device)
        try:
            x_fast, x_pure = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            y_fast, y_pure = fast(x_fast, mode="chunked"), pure(x_pure, mode="chunked")
            y_fast.square().sum().backward()
            y_pure.square().sum().backward()
            rows.append({**row, "status": "ok", "output_error": relative_error(y_fast, y_pure),
                         "input_grad_error": relative_error(x_fast.grad, x_pure.grad)})
        except Exception as error:  # noqa: BLE001 — recorded: a kernel that fails here is a finding
            rows.append({**row, "status": "error", "error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"})
    return pd.DataFrame(rows)


def bf16_steps(device: torch.device, size) -> pd.DataFrame:
    """One training step's loss per mixer (default mode) under bf16 autocast and in float32."""
    d_model, batch, length = size
    rows = []
    for name in models.available():
        losses = {}
        for dtype in ("float32", "bfloat16"):
            torch.manual_seed(0)
            lm = models.LanguageModel(vocab_size=256, d_model=d_model, n_layers=2, mixer=name).to(device)
            tokens = torch.randint(0, 256, (batch, length + 1), generator=torch.Generator().manual_seed(1)).to(device)
            context = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bfloat16" else torch.autocast(device.type, enabled=False)
            with context:
                logits = lm(tokens[:, :-1])
            loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
            loss.backward()
            losses[dtype] = loss.item()
        rows.append({"model": name, "float32_loss": losses["float32"], "bf16_loss": losses["bfloat16"],
                     "relative_difference": abs(losses["bfloat16"] - losses["float32"]) / losses["float32"]})
    return pd.DataFrame(rows)


def sweeps(device: torch.device, sizes: dict, root: Path, out: Path) -> list[Path]:
    """The speed sweep (every mixer's modes) and the throughput sweep, then their report."""
    speed = {"kind": "speed", "device": device.type, "model": {"d_model": 256},
             "speed": {"lengths": sizes["speed_lengths"], "batch_size": 4, "repeats": 3, "warmup": 2,
                       "memory_budget_gb": sizes["memory_budget_gb"], "time_budget_s": sizes["time_budget_s"],
                       "decode_prefills": sizes["speed_lengths"][:1] + sizes["speed_lengths"][-1:]}}
    throughput = {"kind": "throughput", "device": device.type, "lengths": sizes["throughput_lengths"],
                  "tokens_per_step": sizes["tokens_per_step"], "time_budget_s": sizes["time_budget_s"] * 6,
                  "model": {"n_layers": 4, "mlp_ratio": 4, "d_model": 64 if sizes is SIZES["quick"] else 512}}
    for name in models.available():
        for base, sweep in ((speed, "gpu-speed"), (throughput, "gpu-throughput")):
            data = copy.deepcopy(base)
            data["model"]["name"] = name
            run_in_foreground(parse_run_config(data), root=root, sweep=sweep, progress=False)
    written = []
    for sweep in ("gpu-speed", "gpu-throughput"):
        written += speed_report(sweep, root, out)[1]
    return written


def run_cuda_tests(out: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    atomic_write_text(out / "pytest.txt", done.stdout[-20000:] + done.stderr[-5000:])
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else f"pytest exited {done.returncode}"


def gpu_check(*, device: str = "cuda", quick: bool = False, out: str | Path = "results/gpu", root: str | Path | None = None,
              tests: bool = True) -> dict:
    """Run every check; returns what was written and a one-line summary per part."""
    started, out = time.time(), Path(out)
    target = resolve_device(device)
    sizes = SIZES["quick" if quick else "full"]
    root = Path(root) if root else out / "runs"
    parts = {"numerics": numerics(target, sizes["check"]), "kernels": kernels_against_pytorch(target, sizes["check"]),
             "bf16": bf16_steps(target, sizes["check"])}
    for name, table in parts.items():
        atomic_write_csv(out / f"{name}.csv", table)
    written = [out / f"{name}.csv" for name in parts] + sweeps(target, sizes, root, out)
    summary = {
        "numerics": f"{int((parts['numerics']['status'] == 'ok').sum())}/{len(parts['numerics'])} mixer-modes within "
                    f"{REFERENCE_TOLERANCE:g} of the float64 reference; largest output "
                    f"error {parts['numerics']['output_error'].max():.2e}" if "output_error" in parts["numerics"] else "none ran",
        "kernels": ", ".join(f"{r.model} ({r.backend}): {r.status}" for r in parts["kernels"].itertuples()),
        "bf16": f"largest relative loss difference {parts['bf16']['relative_difference'].max():.2e}",
        "cuda tests": run_cuda_tests(out) if tests else "not run",
    }
    origin = provenance(target)
    origin.update(cuda=torch.version.cuda, quick=quick, seconds=round(time.time() - started, 1),
                  packages_optional={m: try_import(m) is not None for m in ("fla", "mamba_ssm", "flash_attn", "triton")})
    atomic_write_json(out / "provenance.json", origin)
    lines = [f"# GPU check on {origin['device_name']}", "",
             f"`seqbench gpu-check{' --quick' if quick else ''} --device {device}`: commit {origin['commit']} "
             f"(dirty: {origin['dirty']}), torch {torch.__version__}, CUDA {torch.version.cuda}, {origin['seconds']} s.", "",
             *[f"- {part}: {text}" for part, text in summary.items()], "",
             "Files: " + ", ".join(sorted({p.name for p in written})) + ", provenance.json, pytest.txt.", ""]
    atomic_write_text(out / "README.md", "\n".join(lines))
    return {"written": written, "summary": summary}
