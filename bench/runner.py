"""Train and evaluate one RunConfig, resumably; the same callable runs locally and on Slurm.

Data flows one way: config → this runner → files in the run directory (store.py). The batch of
step s depends only on (seed, s), so a run resumed from its checkpoint at step s retraces exactly
the steps it lost. Preemption signals are held back while a step is in flight, so the checkpoint
written on preemption is always at a step boundary: no lost and no repeated steps.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

import submitit
import torch
import torch.nn.functional as F

import models
import tasks
from bench.config import RunConfig
from bench.provenance import provenance
from bench.store import RunDir, atomic_write_bytes, quarantine, results_root

PREEMPTION_SIGNALS = (signal.SIGTERM, getattr(signal, f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"))


@contextlib.contextmanager
def signals_deferred():
    """Hold preemption signals until the block ends; they are delivered (and handled) right after."""
    if sys.platform == "win32":
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, PREEMPTION_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA device here; use device='cpu' or 'auto'")
    return torch.device(name)


def batch_seed(run_seed: int, step: int) -> int:
    return run_seed * 1_000_003 + step


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "peak_memory_kind": "cuda_allocated"}
    return {"peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "peak_memory_kind": "cpu_max_rss"}


class Trainer:
    def __init__(self, config: RunConfig, run_dir: RunDir, *, progress: bool | None = None):
        self.config, self.run_dir = config, run_dir
        self.progress = sys.stderr.isatty() if progress is None else progress
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.task = tasks.build(config.task.name, **config.task.options)
        self.model = models.LanguageModel(**config.model.lm_kwargs(self.task.vocab_size)).to(self.device)
        decay, no_decay = [], []
        for name, parameter in self.model.named_parameters():
            (decay if parameter.ndim >= 2 and "embedding" not in name else no_decay).append(parameter)
        opt = config.optimizer
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=opt.lr, betas=opt.betas,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.step, self.metrics, self.resumed_from = 0, [], []
        self._resume()

    def lr_factor(self, step: int) -> float:
        opt = self.config.optimizer
        if step < opt.warmup_steps:
            return (step + 1) / opt.warmup_steps
        if opt.schedule == "constant":
            return 1.0
        progress = (step - opt.warmup_steps) / max(1, self.config.steps - opt.warmup_steps)
        return opt.min_lr_ratio + (1 - opt.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    # --- checkpoints ------------------------------------------------------------------------------
    def _resume(self) -> None:
        path = self.run_dir.checkpoint_path
        if not path.exists():
            return
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
            if state["run_id"] != self.run_dir.run_id:
                raise ValueError("checkpoint of another run")
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step = state["step"]
            self.resumed_from = state.get("resumed_from", []) + [self.step]
        except Exception as error:  # noqa: BLE001 — any unreadable checkpoint is set aside and the run restarts
            moved = quarantine(path)
            print(f"checkpoint {path} unreadable ({error}); moved to {moved.name}, starting from step 0", file=sys.stderr)
            self.step = 0
            return
        self.metrics = [row for row in self.run_dir.read_metrics() if row["step"] <= self.step]

    def save_checkpoint(self) -> None:
        buffer = io.BytesIO()
        torch.save({"run_id": self.run_dir.run_id, "step": self.step, "resumed_from": self.resumed_from,
                    "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict()}, buffer)
        self.run_dir.write_metrics(self.metrics)  # metrics first: they may run ahead, never behind
        atomic_write_bytes(self.run_dir.checkpoint_path, buffer.getvalue())

    # --- training -----------------------------------------------------------------------------------
    def _autocast(self):
        if self.config.autocast == "none":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self.config.autocast))

    def _train_step(self) -> float:
        config = self.config
        inputs, targets = self.task.get_batch("train", config.batch_size, batch_seed(config.seed, self.step))
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        started = time.perf_counter()
        with self._autocast():
            logits = self.model(inputs, mode=config.model.mode)
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=tasks.IGNORE)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.optimizer.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.optimizer.clip_grad_norm)
        self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - started
        self.step += 1
        value = loss.item()
        self.metrics.append({"step": self.step, "split": "train", "loss": value, "lr": lr, "step_time_s": elapsed,
                             "tokens_per_s": inputs.numel() / elapsed})
        return value

    @torch.no_grad()
    def evaluate(self, split: str) -> dict:
        self.model.eval()
        try:
            with self._autocast():
                return self.task.evaluate(lambda x: self.model(x.to(self.device), mode=self.config.model.mode).float(),
                                          split, self.config.eval_batch_size)
        finally:
            self.model.train()

    def _early_stop(self, result: dict) -> bool:
        rule = self.config.early_stop
        if rule is None:
            return False
        if rule.metric not in result:
            raise ValueError(f"early_stop.metric {rule.metric!r} is not a metric of task "
                             f"{self.config.task.name!r}; its metrics: {', '.join(sorted(result))}")
        value = result[rule.metric]
        return value >= rule.threshold if rule.higher_is_better else value <= rule.threshold

    def _report(self) -> dict:
        layers = []
        for name, block in zip(self.model.mixer_names, self.model.blocks):
            mode = block.mixer.resolve_mode(self._mode_for(name))
            layers.append({"mixer": name, "mode": mode, "backend": block.mixer.backend_used(mode)})
        state_len = getattr(self.task, "seq_len", None)
        return {"parameters": self.model.num_parameters(), "state_size": self.model.state_size(state_len), "layers": layers}

    def _mode_for(self, name):
        mode = self.config.model.mode
        return mode.get(name) if isinstance(mode, dict) else mode

    def run(self) -> dict:
        config, run_dir = self.config, self.run_dir
        report, origin = self._report(), provenance(self.device)
        run_dir.write_config(config.model_dump(mode="json"), {**origin, **report})
        run_dir.write_status("running", step=self.step, slurm_job_id=origin["slurm_job_id"])
        status, stopped_early, started = "completed", False, time.time()
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=config.steps, initial=self.step, desc=run_dir.run_id, leave=False)
        while self.step < config.steps:
            with signals_deferred():
                loss = self._train_step()
                if not math.isfinite(loss):
                    status = "diverged"
                    break
                if self.step % config.eval_every == 0 or self.step == config.steps:
                    result = self.evaluate("validation")
                    self.metrics.append({"step": self.step, "split": "validation", **result})
                    stopped_early = self._early_stop(result)
                if self.step % config.checkpoint_every == 0 or stopped_early:
                    self.save_checkpoint()
                    run_dir.write_status("running", step=self.step, slurm_job_id=origin["slurm_job_id"])
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
            if stopped_early:
                break
        if bar:
            bar.close()
        final = self.evaluate(config.final_split) if status == "completed" else {}
        self.save_checkpoint()
        train_rows = [row for row in self.metrics if row["split"] == "train"]
        recent = train_rows[-50:]
        summary = {
            "status": status, "steps": self.step, "stopped_early": stopped_early,
            "final_split": config.final_split, **{f"final_{key}": value for key, value in final.items()},
            "train_loss": recent[-1]["loss"] if recent else None,
            "tokens_per_s": sum(r["tokens_per_s"] for r in recent) / len(recent) if recent else None,
            "step_time_s": sum(r["step_time_s"] for r in recent) / len(recent) if recent else None,
            "wall_time_s": time.time() - started, "resumed_from": self.resumed_from,
            **peak_memory(self.device), **report,
        }
        run_dir.write_summary(summary)
        run_dir.write_status(status, step=self.step)
        return summary


class Run(submitit.helpers.Checkpointable):
    """A picklable, resumable job: config + where to write. All training state lives on disk."""

    def __init__(self, config: RunConfig, root: str | os.PathLike, sweep: str):
        self.config, self.root, self.sweep = config, str(root), sweep
        self._trainer: Trainer | None = None

    @property
    def run_dir(self) -> RunDir:
        return RunDir(Path(self.root), self.sweep, self.config.run_id())

    def __getstate__(self):
        return {"config": self.config, "root": self.root, "sweep": self.sweep}

    def __setstate__(self, state):
        self.__dict__.update(state, _trainer=None)

    def __call__(self) -> dict:
        run_dir = self.run_dir
        run_dir.write_config(self.config.model_dump(mode="json"), provenance(None))  # even if set-up fails
        try:
            if self.config.kind == "speed":
                return run_speed_in(self.config, run_dir)
            self._trainer = Trainer(self.config, run_dir)
            return self._trainer.run()
        except Exception:
            run_dir.write_error(traceback.format_exc())
            last = traceback.format_exc().strip().splitlines()[-1]
            run_dir.write_status("failed", error=last)
            raise

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on preemption or timeout, always between steps (see signals_deferred)."""
        if self._trainer is not None:
            self._trainer.save_checkpoint()
            self.run_dir.write_status("preempted", step=self._trainer.step)
        return submitit.helpers.DelayedSubmission(Run(self.config, self.root, self.sweep))


def run_speed_in(config: RunConfig, run_dir: RunDir) -> dict:
    from bench.speed import run_speed

    run_dir.write_status("running", step=0, slurm_job_id=provenance(None)["slurm_job_id"])
    device = resolve_device(config.device)
    run_dir.write_config(config.model_dump(mode="json"), provenance(device))
    summary = run_speed(config, run_dir)
    run_dir.write_summary(summary)
    run_dir.write_status("completed", step=0)
    return summary


def run_in_foreground(config: RunConfig, *, root=None, sweep: str = "single", progress: bool | None = None) -> dict:
    run_dir = RunDir(results_root(root), sweep, config.run_id())
    if run_dir.is_finished():
        return run_dir.read_summary()
    if config.kind == "speed":
        return run_speed_in(config, run_dir)
    return Trainer(config, run_dir, progress=progress).run()
