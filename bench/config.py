"""RunConfig: one validated schema for a run; its canonical JSON's hash is the run's identity.

Canonical means: every field present (defaults filled, mixer and task option defaults too), keys
sorted, no whitespace. Nothing else decides identity, so re-launching a sweep finds finished runs.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import models
import tasks


class Strict(BaseModel):
    """Rejects unknown fields with the list of valid ones (pydantic's own message lists none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(
                    f"unknown field(s) {', '.join(map(repr, unknown))} in {cls.__name__}; "
                    f"valid fields: {', '.join(sorted(cls.model_fields))}"
                )
        return data


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


class ModelConfig(Strict):
    name: str | list[str] = Field("gateloop", description="mixer name, or one name per layer (a hybrid)")
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    mlp_ratio: int = Field(4, ge=0, description="MLP width multiple; 0 for no MLP")
    options: dict[str, Any] = Field(default_factory=dict, description="mixer options; keyed by mixer for a hybrid")
    mode: str | dict[str, str] | None = Field(None, description="training mode; None is each mixer's default")

    @model_validator(mode="after")
    def _fill_mixer_options(self) -> "ModelConfig":
        names = [self.name] if isinstance(self.name, str) else list(self.name)
        if not isinstance(self.name, str) and len(names) != self.n_layers:
            raise ValueError(f"a hybrid needs one mixer name per layer: got {len(names)} names for {self.n_layers} layers")
        for name in names:
            models.registry.get_class(name)
        if isinstance(self.name, str):
            models.registry.MIXERS.check_options(self.name, self.options)
            filled = {**models.options(self.name), **self.options}
        else:
            unknown = sorted(set(self.options) - set(names))
            if unknown:
                raise ValueError(f"for a hybrid, options are keyed by mixer name; {unknown} not among {sorted(set(names))}")
            filled = {}
            for name in sorted(set(names)):
                models.registry.MIXERS.check_options(name, self.options.get(name, {}))
                filled[name] = {**models.options(name), **self.options.get(name, {})}
        if isinstance(self.mode, dict):
            unknown = sorted(set(self.mode) - set(names))
            if unknown:
                raise ValueError(f"mode given for mixer(s) {unknown} not in this model: {sorted(set(names))}")
            requested = self.mode.items()
        else:
            requested = [(name, self.mode) for name in sorted(set(names))] if self.mode else []
        for name, mode in requested:
            valid = models.registry.get_class(name).modes
            if mode not in valid:
                raise ValueError(f"unknown mode {mode!r} for mixer {name!r}; valid modes: {', '.join(valid)}")
        object.__setattr__(self, "options", _jsonable(filled))
        return self

    def lm_kwargs(self, vocab_size: int) -> dict[str, Any]:
        return dict(vocab_size=vocab_size, d_model=self.d_model, n_layers=self.n_layers,
                    mixer=self.name, mixer_options=self.options, mlp_ratio=self.mlp_ratio)


class TaskConfig(Strict):
    name: str = "mqar"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fill_task_options(self) -> "TaskConfig":
        tasks.TASKS.check_options(self.name, self.options)
        object.__setattr__(self, "options", _jsonable({**tasks.options(self.name), **self.options}))
        return self


class OptimizerConfig(Strict):
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    clip_grad_norm: float | None = Field(1.0, gt=0)


class EarlyStopConfig(Strict):
    metric: str = "accuracy"
    threshold: float = 0.99
    higher_is_better: bool = True


class SpeedSpec(Strict):
    """What a speed run measures (bench/speed.py); the model section says which model."""

    lengths: list[int] = Field(default_factory=lambda: [256, 1024, 4096, 16384])
    modes: list[str] | None = Field(None, description="None: every mode of the model")
    batch_size: int = Field(4, ge=1)
    dtype: Literal["float32", "float64", "bfloat16"] = "float32"
    repeats: int = Field(5, ge=1)
    warmup: int = Field(1, ge=0)
    threads: int = Field(2, ge=1, description="fixed CPU thread count while timing")
    memory_budget_gb: float = Field(8.0, gt=0)
    time_budget_s: float = Field(30.0, gt=0, description="per case: warm-up and repeats together")
    decode_prefills: list[int] = Field(default_factory=lambda: [256, 16384])
    measures: list[Literal["forward", "forward_backward", "step"]] = Field(
        default_factory=lambda: ["forward", "forward_backward", "step"])

    @model_validator(mode="after")
    def _sorted_lengths(self) -> "SpeedSpec":
        if sorted(self.lengths) != self.lengths or any(length < 1 for length in self.lengths):
            raise ValueError(f"speed.lengths must be positive and increasing, got {self.lengths}")
        return self


EXECUTION_ONLY = {"threads"}


class RunConfig(Strict):
    kind: Literal["train", "speed"] = "train"
    speed: SpeedSpec = Field(default_factory=SpeedSpec, description="used by kind 'speed'")
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(32, ge=1)
    eval_every: int = Field(200, ge=1, description="steps between evaluations on the validation split")
    eval_batch_size: int = Field(64, ge=1)
    final_split: Literal["validation", "test"] = "test"
    early_stop: EarlyStopConfig | None = None
    checkpoint_every: int = Field(100, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    autocast: Literal["none", "bfloat16", "float16"] = "none"
    threads: int | None = Field(None, ge=1, description="torch CPU threads; None leaves torch's default")

    @model_validator(mode="after")
    def _speed_runs_measure_one_mixer(self) -> "RunConfig":
        if self.kind == "speed":
            if not isinstance(self.model.name, str):
                raise ValueError("a speed run measures one mixer: model.name must be a single name")
            valid = models.registry.get_class(self.model.name).modes
            for mode in self.speed.modes or []:
                if mode not in valid:
                    raise ValueError(f"speed.modes: unknown mode {mode!r} for mixer {self.model.name!r}; valid modes: {', '.join(valid)}")
        return self

    def canonical_json(self) -> str:
        """Identity: every field but execution details that cannot change a result (EXECUTION_ONLY)."""
        return json.dumps(self.model_dump(mode="json", exclude=EXECUTION_ONLY), sort_keys=True, separators=(",", ":"))

    def run_id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


def parse_run_config(data: dict[str, Any]) -> RunConfig:
    """RunConfig from a dict, with errors flattened to one readable message per problem."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"]) or "config"
            problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
        raise ValueError("invalid run config:\n  " + "\n  ".join(problems)) from None
