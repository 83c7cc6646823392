"""Train and evaluate one run config, resumably; the same callable runs locally and on Slurm.

Data flows one way: config → this runner → files in the run directory (the store). The batch of
step s depends only on (seed, s), so a run resumed from its checkpoint at step s retraces exactly
the steps it lost. A preemption signal (SIGUSR2 from Slurm, SIGTERM) only records a request; the
loop acts on it at the next step boundary — checkpoint, then submitit's requeue or a clean exit —
so no step is lost or repeated and the result never depends on when the signal came. One trainer
per run: the run's lease (store.py) is held for the whole run.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import time
import traceback

import submitit
import torch
import torch.nn.functional as F

from seqbench import tasks
from seqbench.bench.checkpoint import CHECKPOINT_FORMAT, check_checkpoint
from seqbench.bench.config import OpBenchConfig, RunConfig, SpeedConfig, ThroughputConfig, TrainConfig
from seqbench.bench.device import resolve_device
from seqbench.bench.lease import HEARTBEAT_S, STALE_AFTER_S, LeaseHeld
from seqbench.bench.provenance import provenance, slurm_job_id
from seqbench.bench.stop import StopRequest, preemption_requests, stop_when_launcher_dies
from seqbench.bench.store import RunDir, Store, quarantine
from seqbench.bench.timing import peak_memory
from seqbench.bench.tracking import Trackers
from seqbench.core import remove_stale_temporaries


def batch_seed(run_seed: int, step: int) -> int:
    return run_seed * 1_000_003 + step


def is_finite(value) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: RunDir, *, progress: bool | None = None):
        self.config, self.run_dir = config, run_dir
        self.progress = sys.stderr.isatty() if progress is None else progress
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        self.task = tasks.build(config.task.name, **config.task.options)
        self.task.verify_data(config.task.data)  # at every start and resume: the data the run's id names, or nothing
        self._fresh_state()
        self._resume()

    def _fresh_state(self) -> None:
        config = self.config
        torch.manual_seed(config.seed)
        self.model = config.model.build(vocab_size=self.task.vocab_size, device=self.device)
        parameters = dict(self.model.named_parameters())
        decay, no_decay = ([parameters[name] for name in names] for names in self.model.weight_decay_split())
        opt = config.optimizer
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": opt.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=opt.lr, betas=opt.betas,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.step, self.metrics, self.resumed_from, self.stopped_early = 0, [], [], False
        self.trackers = None

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
            # weights_only: a checkpoint is data; a crafted pickle must never run code on resume
            state = torch.load(path, map_location=self.device, weights_only=True)
            check_checkpoint(state, self.run_dir.run_id)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step, self.stopped_early = state["step"], state["stopped_early"]
            self.resumed_from = [*state["resumed_from"], self.step]
        except Exception as error:  # noqa: BLE001 — any unreadable checkpoint is set aside and the run restarts
            quarantine(path, f"checkpoint unusable ({type(error).__name__}: {error}); starting from step 0")
            self._fresh_state()  # a failed load may have changed some weights already
            return
        self.metrics = [row for row in self.run_dir.read_metrics() if row["step"] <= self.step]

    def save_checkpoint(self) -> None:
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "run_id": self.run_dir.run_id, "step": self.step,
                    "stopped_early": self.stopped_early, "resumed_from": self.resumed_from,
                    "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict()}, buffer)
        self.run_dir.write_metrics(self.metrics)  # metrics first: they may run ahead, never behind
        self.run_dir.write_checkpoint(buffer.getvalue())

    def _checkpoint_for_stop(self, job_id) -> None:
        self.save_checkpoint()
        self.run_dir.write_status("preempted", step=self.step, slurm_job_id=job_id)

    # --- training -----------------------------------------------------------------------------------
    def _autocast(self):
        if self.config.autocast == "none":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self.config.autocast))

    def _train_step(self) -> float:
        """One optimizer step over `grad_accumulation` micro-batches (micro-batch i of step s is
        batch (seed, s·accumulation + i), so accumulation 1 is the plain step); the loss is their mean."""
        config = self.config
        accumulation = config.grad_accumulation
        batches = [self.task.get_batch("train", config.batch_size, batch_seed(config.seed, self.step * accumulation + micro))
                   for micro in range(accumulation)]
        self.optimizer.zero_grad(set_to_none=True)
        started, total, tokens = time.perf_counter(), 0.0, 0
        for inputs, targets in batches:
            inputs, targets = inputs.to(self.device), targets.to(self.device)
            with self._autocast():
                scored = targets != tasks.IGNORE
                loss = F.cross_entropy(self.model(inputs, scored=scored).float(), targets[scored])
            (loss / accumulation).backward()
            total += loss.item() / accumulation
            tokens += inputs.numel()
        if config.optimizer.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.optimizer.clip_grad_norm)
        self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - started
        self.step += 1
        self._record({"step": self.step, "split": "train", "loss": total, "lr": lr, "step_time_s": elapsed,
                      "tokens_per_s": tokens / elapsed})
        return total

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    @torch.no_grad()
    def evaluate(self, split: str) -> dict:
        self.model.eval()
        try:
            with self._autocast():
                return self.task.evaluate(lambda x: self.model(x.to(self.device)).float(), split, self.config.eval_batch_size)
        finally:
            self.model.train()

    def _early_stop(self, result: dict) -> bool:
        rule = self.config.early_stop
        if rule is None:
            return False
        value = result[rule.metric]
        return value >= rule.threshold if rule.higher_is_better else value <= rule.threshold

    def _record(self, row: dict) -> None:
        """A metrics row: kept for metrics.jsonl (the source of truth) and sent to the live trackers."""
        self.metrics.append(row)
        if self.trackers is not None:
            self.trackers.log(row)

    def _report(self) -> dict:
        state_len = getattr(self.task, "seq_len", None)
        return {"parameters": self.model.num_parameters(), "state_size": self.model.state_size(state_len),
                "layers": self.model.layers()}

    def run(self, lease=None, request: StopRequest | None = None) -> dict:
        """Train to the end; `request` is the stop request installed before set-up (execute), so a
        signal that came while the model was being built is acted on at the first step boundary."""
        config, run_dir = self.config, self.run_dir
        report, origin = self._report(), provenance(self.device, config)
        run_dir.write_config(config.model_dump(mode="json"), {**origin, **report})
        run_dir.write_status("running", step=self.step, slurm_job_id=origin["slurm_job_id"])
        status, started = "completed", time.time()
        self.trackers = Trackers(config.tracking, run_id=run_dir.run_id, folder=run_dir.path, step=self.step,
                                 config=config.model_dump(mode="json")) if config.tracking else None
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=config.steps, initial=self.step, desc=run_dir.run_id, leave=False)
        with contextlib.nullcontext(request) if request is not None else preemption_requests() as request:
            while self.step < config.steps and not self.stopped_early:
                # --- a step boundary: act on what was asked while the last step ran ----------------
                if lease is not None and lease.lost.is_set():
                    raise LeaseHeld(f"run {run_dir.run_id}: lease lost to another trainer; stopping without writing")
                request.at_boundary(lambda: self._checkpoint_for_stop(origin["slurm_job_id"]))
                loss = self._train_step()
                if not math.isfinite(loss) or not self.weights_finite():
                    status = "diverged"
                    break
                if self.step % config.eval_every == 0 or self.step == config.steps:
                    result = self.evaluate("validation")
                    self._record({"step": self.step, "split": "validation", **result})
                    if not all(is_finite(value) for value in result.values()):
                        status = "diverged"
                        break
                    self.stopped_early = self._early_stop(result)
                if self.step % config.checkpoint_every == 0 or self.stopped_early:
                    self.save_checkpoint()
                    run_dir.write_status("running", step=self.step, slurm_job_id=origin["slurm_job_id"])
                if bar:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}")
            if bar:
                bar.close()
            final = self.evaluate(config.final_split) if status == "completed" else {}
            self.save_checkpoint()
            if self.trackers is not None:
                self.trackers.close()
        train_rows = [row for row in self.metrics if row["split"] == "train"]
        recent = train_rows[-50:]
        validation = next((row for row in reversed(self.metrics) if row["split"] == "validation"), {})
        summary = {
            "status": status, "steps": self.step, "stopped_early": self.stopped_early,
            "final_split": config.final_split, **{f"final_{key}": value for key, value in final.items()},
            **{f"validation_{key}": value for key, value in validation.items() if key not in ("step", "split")},
            "train_loss": recent[-1]["loss"] if recent else None,
            "tokens_per_s": sum(r["tokens_per_s"] for r in recent) / len(recent) if recent else None,
            "step_time_s": sum(r["step_time_s"] for r in recent) / len(recent) if recent else None,
            "wall_time_s": time.time() - started, "resumed_from": self.resumed_from,
            **peak_memory(self.device), **report,
        }
        if status == "completed" and not all(is_finite(value) for value in summary.values()):
            status = summary["status"] = "diverged"  # NaN never reaches a table as a completed result
        run_dir.write_summary(summary)
        run_dir.write_status(status, step=self.step)
        return summary


def lease_wait_s() -> float:
    """How long a trainer waits for a run's lease. Under Slurm a requeued job may start before its
    hard-killed predecessor's lease went stale on another node, so it waits that long; elsewhere a
    dead holder on this host is seen at once (its pid is gone), and a live one means leave now."""
    return STALE_AFTER_S + 2 * HEARTBEAT_S if os.environ.get("SLURM_JOB_ID") else 0.0


def execute(config: RunConfig, run_dir: RunDir, *, progress: bool | None = None, on_trainer=None) -> dict:
    """Run one config under its lease. A run found finished once the lease is held (another
    trainer finished it meanwhile) is not run again: its summary comes back with `skipped` set."""
    # handlers first: a stop signal during set-up (building the task and model takes seconds under
    # load) was swallowed by submitit's SIGTERM bypass and the trainer never stopped
    with preemption_requests() as request, \
            run_dir.lease({"job_id": slurm_job_id(), "kind": config.kind}, wait_s=lease_wait_s()) as lease:
        if run_dir.is_finished():
            return {**run_dir.read_summary(), "skipped": "finished already"}
        remove_stale_temporaries(run_dir.path, ORPHAN_AFTER_S)  # a trainer killed mid-write left them: we hold the lease
        try:
            run_dir.write_config(config.model_dump(mode="json"), provenance(None, config))  # even if set-up fails
            if isinstance(config, TrainConfig):
                trainer = Trainer(config, run_dir, progress=progress)
                if on_trainer is not None:
                    on_trainer(trainer)
                return trainer.run(lease, request)
            return measure_in(config, run_dir, request)
        except LeaseHeld:
            raise  # lost to another trainer: the run and its status are theirs now
        except Exception:
            record_failure(run_dir, traceback.format_exc())  # never left "running" (a foreground run included)
            raise
        finally:
            remove_stale_temporaries(run_dir.path, ORPHAN_AFTER_S)


# a temporary in a run folder this old, while we hold its lease, was left by a writer that was killed
# (a status written by a submitter at this moment is milliseconds old)
ORPHAN_AFTER_S = 60.0


def record_failure(run_dir: RunDir, text: str) -> None:
    with contextlib.suppress(OSError):
        run_dir.write_error(text)
        run_dir.write_status("failed", error=text.strip().splitlines()[-1])


def measure_in(config: SpeedConfig | OpBenchConfig | ThroughputConfig, run_dir: RunDir, stop: StopRequest | None = None) -> dict:
    """The measurement kinds: rows to the run's rows.jsonl, a summary beside them. A stop request
    ends the measurement between cases; the run stays unfinished and is measured again on re-launch."""
    from seqbench.bench.op_speed import gateloop_op_benchmark
    from seqbench.bench.speed import measure_model
    from seqbench.bench.throughput import training_throughput

    started = time.time()
    run_dir.write_status("running", step=0, slurm_job_id=slurm_job_id())
    device = torch.device("cpu") if isinstance(config, OpBenchConfig) else resolve_device(config.device)
    run_dir.write_config(config.model_dump(mode="json"), provenance(device, config))
    measure = {SpeedConfig: measure_model, OpBenchConfig: gateloop_op_benchmark, ThroughputConfig: training_throughput}[type(config)]
    rows = measure(config, stop)
    run_dir.write_rows(rows)
    summary = {"status": "completed", "steps": 0, "rows": len(rows), "row_statuses": sorted({row["status"] for row in rows}),
               "wall_time_s": time.time() - started}
    run_dir.write_summary(summary)
    run_dir.write_status("completed", step=0)
    return summary


class Run(submitit.helpers.Checkpointable):
    """A picklable, resumable job: config + where to write. All training state lives on disk."""

    def __init__(self, config: RunConfig, root, sweep: str):
        self.config, self.root, self.sweep = config, str(root), sweep
        self._trainer: Trainer | None = None

    @property
    def run_dir(self) -> RunDir:
        return Store(self.root).run(self.sweep, self.config.run_id())

    def __getstate__(self):
        return {"config": self.config, "root": self.root, "sweep": self.sweep}

    def __setstate__(self, state):
        self.__dict__.update(state, _trainer=None)

    def __call__(self) -> dict:
        run_dir = self.run_dir
        stop_when_launcher_dies()  # a local launcher killed outright: stop too, not train on as an orphan
        try:
            return execute(self.config, run_dir, on_trainer=lambda trainer: setattr(self, "_trainer", trainer))
        except LeaseHeld as busy:
            return {"status": "busy", "skipped": str(busy)}

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit after the trainer has checkpointed at a step boundary (StopRequest)."""
        return submitit.helpers.DelayedSubmission(Run(self.config, self.root, self.sweep))


def run_in_foreground(config: RunConfig, *, root=None, sweep: str = "single", progress: bool | None = None) -> dict:
    return execute(config, Store(root).run(sweep, config.run_id()), progress=progress)


def run_file(path, *, root=None, sweep: str = "single") -> dict:
    """`seqbench run FILE`: the sweep folder's name is checked before the config is read (a crafted
    name fails as itself, whatever the file), then the run trains in the foreground."""
    from seqbench.bench.config import load_run_config

    Store(root).sweep(sweep)
    return run_in_foreground(load_run_config(path), root=root, sweep=sweep)
