"""Run configs: one validated schema per run kind, a tagged union on `kind` (their sections and a
run's identity: bench/sections.py).

    train        train and evaluate a LanguageModel on a task (bench/runner.py)
    throughput   the LM's optimizer step (tokens/s, peak memory) against length, at matched parameters
    speed        time and memory of one mixer's modes against length (bench/speed.py)
    gateloop_op  GateLoop's op implementations side by side against the memory-traffic floor

Every value is checked when the config is built, so a bad sweep fails at `--dry-run`, never on
the cluster.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from seqbench import models, tasks
from seqbench.bench.sections import (
    EarlyStopConfig,
    ModelConfig,
    OptimizerConfig,
    RunSpec,
    Strict,
    TaskConfig,
    increasing_lengths,
    meta_size,
)
from seqbench.models.gateloop.implementations import IMPLEMENTATIONS


class TrainConfig(RunSpec):
    execution_only: ClassVar[set[str]] = {"threads", "checkpoint_every", "tracking"}

    kind: Literal["train"] = "train"
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(32, ge=1)
    grad_accumulation: int = Field(1, ge=1, description="micro-batches of batch_size per optimizer step")
    eval_every: int = Field(200, ge=1, description="steps between evaluations on the validation split")
    eval_batch_size: int = Field(64, ge=1)
    final_split: Literal["validation", "test"] = "test"
    early_stop: EarlyStopConfig | None = None
    checkpoint_every: int = Field(100, ge=1)
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    autocast: Literal["none", "bfloat16", "float16"] = "none"
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None leaves torch's default")
    tracking: list[str] = Field(default_factory=list, description="live curves: 'tensorboard' and/or 'wandb' (bench/tracking.py)")

    @field_validator("tracking")
    @classmethod
    def _trackers_installed(cls, names):
        from seqbench.bench.tracking import check_trackers

        check_trackers(names)
        return names

    @model_validator(mode="after")
    def _match_parameters(self) -> TrainConfig:
        """The solved widths are part of the config, so they are hashed and recorded."""
        if self.model.target_parameters is not None:
            vocab = tasks.TASKS.get_class(self.task.name).vocab_size_of(self.task.options)
            object.__setattr__(self, "model", self.model.matched(vocab))
        return self

    @model_validator(mode="after")
    def _backbone_fits_the_task(self) -> TrainConfig:
        wanted = tasks.TASKS.get_class(self.task.name).backbone
        if self.model.backbone != wanted:
            raise ValueError(f"task {self.task.name!r} is scored with model.backbone = {wanted!r}, got {self.model.backbone!r}")
        return self

    @model_validator(mode="after")
    def _early_stop_metric_exists(self) -> TrainConfig:
        if self.early_stop is not None:
            reported = tasks.TASKS.get_class(self.task.name).metrics
            if self.early_stop.metric not in reported:
                raise ValueError(f"early_stop.metric {self.early_stop.metric!r} is not reported by task "
                                 f"{self.task.name!r}; its metrics: {', '.join(reported)}")
        return self

    def size(self) -> dict[str, int]:
        """Parameters and decoding-state scalars per sequence (all layers), counted on the meta device."""
        task = tasks.TASKS.get_class(self.task.name)
        return meta_size(self.model.structure(), task.vocab_size_of(self.task.options), task.seq_len_of(self.task.options))


MEASURES = ("forward", "forward_backward", "step")


class SpeedSpec(Strict):
    """What a speed run measures; the model section says which model."""

    lengths: list[int] = Field(default_factory=lambda: [256, 1024, 4096, 16384])
    modes: list[str] | None = Field(None, description="None: every mode of the model")
    batch_size: int = Field(4, ge=1)
    dtype: Literal["float32", "float64", "bfloat16"] = "float32"
    repeats: int = Field(5, ge=1)
    warmup: int = Field(1, ge=0)
    threads: int = Field(2, ge=1, description="fixed CPU thread count while timing")
    memory_budget_gb: float = Field(8.0, gt=0)
    time_budget_s: float = Field(30.0, gt=0, description="per case: warm-up and repeats together")
    decode_prefills: list[int] | None = Field(None, description="prefill lengths after which decoding is timed; "
                                              "None: the shortest and the longest of `lengths`")
    measures: list[Literal["forward", "forward_backward", "step"]] = Field(default_factory=lambda: list(MEASURES))

    @model_validator(mode="after")
    def _sorted_lengths(self) -> SpeedSpec:
        increasing_lengths("speed.lengths", self.lengths)
        if self.decode_prefills is None:  # never a decode longer than the lengths asked for
            object.__setattr__(self, "decode_prefills", sorted({self.lengths[0], self.lengths[-1]}))
        if any(prefill < 1 for prefill in self.decode_prefills):
            raise ValueError(f"speed.decode_prefills must be positive, got {self.decode_prefills}")
        return self


class SpeedConfig(RunSpec):
    kind: Literal["speed"]
    model: ModelConfig = Field(default_factory=ModelConfig)
    speed: SpeedSpec = Field(default_factory=SpeedSpec)
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _one_mixer(self) -> SpeedConfig:
        if not isinstance(self.model.name, str):
            raise ValueError("a speed run measures one mixer: model.name must be a single name")
        valid = models.registry.get_class(self.model.name).modes
        for mode in self.speed.modes or []:
            if mode not in valid:
                raise ValueError(f"speed.modes: unknown mode {mode!r} for mixer {self.model.name!r}; valid modes: {', '.join(valid)}")
        return self


class OpBenchConfig(RunSpec):
    """GateLoop's op (max heads) per implementation and length, against the copy-bandwidth floor."""

    kind: Literal["gateloop_op"]
    lengths: list[int] = Field(default_factory=lambda: [256, 1024, 4096, 16384])
    batch_size: int = Field(4, ge=1)
    channels: int = Field(256, ge=1)
    repeats: int = Field(5, ge=1)
    threads: int = Field(2, ge=1)
    implementations: list[str] = Field(default_factory=lambda: list(IMPLEMENTATIONS))
    time_budget_s: float = Field(60.0, gt=0)
    check_gradients_at: int | None = Field(None, ge=1, description="also the float64 error of output and gradients at this length")
    seed: int = Field(0, ge=0, description="seed of the random inputs")

    @model_validator(mode="after")
    def _known(self) -> OpBenchConfig:
        unknown = [name for name in self.implementations if name not in IMPLEMENTATIONS]
        if unknown:
            raise ValueError(f"unknown implementation(s) {unknown}; valid: {', '.join(IMPLEMENTATIONS)}")
        increasing_lengths("lengths", self.lengths)
        return self


class ThroughputConfig(RunSpec):
    """One optimizer step (forward, loss, backward, clip, AdamW) of the whole LM on random bytes,
    per length, with tokens per step held constant (batch = tokens_per_step / length)."""

    kind: Literal["throughput"]
    model: ModelConfig = Field(default_factory=ModelConfig)
    vocab_size: int = Field(256, ge=2)
    lengths: list[int] = Field(default_factory=lambda: [256, 1024, 4096])
    tokens_per_step: int = Field(4096, ge=1)
    repeats: int = Field(3, ge=1)
    warmup: int = Field(1, ge=0)
    threads: int = Field(1, ge=1, description="fixed CPU thread count while timing")
    time_budget_s: float = Field(120.0, gt=0, description="per length: warm-up and repeats together")
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> ThroughputConfig:
        increasing_lengths("lengths", self.lengths)
        if self.lengths[-1] > self.tokens_per_step:
            raise ValueError(f"tokens_per_step ({self.tokens_per_step}) must be at least the longest length ({self.lengths[-1]})")
        if self.model.target_parameters is not None:
            object.__setattr__(self, "model", self.model.matched(self.vocab_size))
        return self


RunConfig = Annotated[TrainConfig | SpeedConfig | OpBenchConfig | ThroughputConfig, Field(discriminator="kind")]
KINDS = ("train", "speed", "gateloop_op", "throughput")
_ADAPTER = TypeAdapter(RunConfig)


def _flatten_errors(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"][1:] if not str(part).startswith("function-"))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] in ("finite_number",):
            message = "must be a finite number"
        problems.append(f"{where or 'config'}: {message}")
    return "invalid run config:\n  " + "\n  ".join(problems)


def parse_run_config(data: dict[str, Any]) -> TrainConfig | SpeedConfig | OpBenchConfig | ThroughputConfig:
    """A run config from a dict (kind defaults to "train"), errors flattened to one line per problem
    that names the field."""
    if not isinstance(data, dict):
        raise ValueError(f"a run config is a table of fields, got {type(data).__name__}")
    kind = data.get("kind", "train")
    if kind not in KINDS:
        raise ValueError(f"invalid run config:\n  kind: unknown run kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    try:
        return _ADAPTER.validate_python({**data, "kind": kind})
    except ValidationError as error:
        raise ValueError(_flatten_errors(error)) from None


def load_run_config(path) -> TrainConfig | SpeedConfig | OpBenchConfig | ThroughputConfig:
    """A run config from a JSON or TOML file."""
    import tomllib
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {error}") from None
    except RecursionError:
        raise ValueError(f"{path}: arrays or tables nested too deeply to read") from None
    return parse_run_config(data)
