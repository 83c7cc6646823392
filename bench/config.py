"""Run configs: one validated schema per run kind, a tagged union on `kind`.

    train        train and evaluate a LanguageModel on a task (bench/runner.py)
    throughput   the LM's optimizer step (tokens/s, peak memory) against length, at matched parameters
    speed        time and memory of one mixer's modes against length (bench/speed.py)
    gateloop_op  GateLoop's op implementations side by side against the memory-traffic floor

Every value is checked when the config is built — field ranges here, mixer option values by
building the model on PyTorch's meta device (no memory, no compute), task option values by the
task's own `check_values` — so a bad sweep fails at `--dry-run`, never on the cluster.

A run's identity is the hash of its canonical JSON: the schema version and every field that can
change its result, defaults filled, keys sorted. Execution details (threads for training, how often
to checkpoint) are left out, so changing them never re-runs a finished run.
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from seqbench import models, tasks
from seqbench.models.gateloop.implementations import IMPLEMENTATIONS

SCHEMA_VERSION = 2  # bump when a field's meaning changes; every run id changes with it
# Fields and mixer options added after schema 2 enter the hash only when they differ from these
# defaults, so adding an option never changes the id (and so never re-runs) a run that could not set it.
HASHED_WHEN_SET = {("model", "norm"): "pre", ("grad_accumulation",): 1}
MIXER_OPTIONS_HASHED_WHEN_SET = {"gateloop": {"real_transition_sign": False, "state_operator": "complex"},
                                 "retnet": {"backend": "torch"}, "linear_attention": {"backend": "torch"}}


class Strict(BaseModel):
    """Rejects unknown fields with the list of valid ones (pydantic's own message lists none)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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


@functools.lru_cache(maxsize=64)
def _meta_model(structure: str, vocab_size: int):
    """The model a ModelConfig's structure describes, built on the meta device (no memory, no
    compute); building it is what checks every mixer option's value."""
    return ModelConfig.model_construct(**json.loads(structure)).build(vocab_size=vocab_size, device="meta")


@functools.lru_cache(maxsize=512)
def _meta_size(structure: str, vocab_size: int, seq_len: int | None) -> dict[str, int]:
    model = _meta_model(structure, vocab_size)
    return {"parameters": model.num_parameters(), "state_size": model.state_size(seq_len)}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


class ModelConfig(Strict):
    name: str | list[str] = Field("gateloop", description="mixer name, or one name per layer (a hybrid)")
    # structural sizes are bounded: a typo (n_layers = 100000) fails at once instead of building 100k layers to check it
    d_model: int = Field(64, ge=1, le=65_536)
    n_layers: int = Field(2, ge=1, le=1024)
    mlp_ratio: int = Field(4, ge=0, le=64, description="MLP width multiple; 0 for no MLP")
    mlp_hidden: int | None = Field(None, ge=0, le=1 << 22, description="MLP width; None: mlp_ratio × d_model (solved when matching parameters)")
    target_parameters: int | None = Field(None, ge=1, le=10**12, description="solve d_model and mlp_hidden to this parameter count (±2%)")
    options: dict[str, Any] = Field(default_factory=dict, description="mixer options; keyed by mixer for a hybrid")
    mode: str | dict[str, str] | None = Field(None, description="training mode; None is each mixer's default")
    norm: Literal["pre", "post"] = Field("pre", description="pre-norm blocks x + f(norm x), or post-norm norm(x + f(x))")

    @model_validator(mode="after")
    def _plan_and_check_values(self) -> ModelConfig:
        plan = models.plan_layers(self.name, self.n_layers, self.options, self.mode)
        filled = {layer.mixer: layer.options for layer in plan}
        options = filled[plan[0].mixer] if isinstance(self.name, str) else dict(sorted(filled.items()))
        object.__setattr__(self, "options", _jsonable(options))
        _meta_model(self._structure(), 2)  # option values: each mixer's constructor checks its own
        return self

    def _structure(self) -> str:
        """What the built model depends on, as text: the key of the meta-device builds (a sweep of
        10,000 runs over lr and seeds builds each distinct model once, not 20,000 times)."""
        return json.dumps(self.model_dump(mode="json", exclude={"target_parameters"}), sort_keys=True)

    def plan(self) -> list[models.LayerPlan]:
        return models.plan_layers(self.name, self.n_layers, self.options, self.mode)

    def build(self, *, vocab_size: int, device=None) -> models.LanguageModel:
        import torch

        with torch.device(device or "cpu"):
            return models.LanguageModel(vocab_size=vocab_size, d_model=self.d_model, n_layers=self.n_layers,
                                        mixer=self.name, mixer_options=self.options, mlp_ratio=self.mlp_ratio,
                                        mlp_hidden=self.mlp_hidden, mode=self.mode, norm=self.norm)

    def matched(self, vocab_size: int) -> ModelConfig:
        """This config with d_model and mlp_hidden solved for `target_parameters` (models/fair.py)."""
        from seqbench.models.fair import solve_widths

        if self.target_parameters is None:
            return self
        d_model, hidden, _ = solve_widths(self.target_parameters, mlp_ratio=self.mlp_ratio, vocab_size=vocab_size,
                                          n_layers=self.n_layers, mixer=self.name, mixer_options=self.options)
        return self.model_copy(update={"d_model": d_model, "mlp_hidden": hidden})


class TaskConfig(Strict):
    name: str = "mqar"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fill_and_check(self) -> TaskConfig:
        tasks.TASKS.check_options(self.name, self.options)
        filled = {**tasks.options(self.name), **self.options}
        tasks.TASKS.get_class(self.name).check_values(filled)
        object.__setattr__(self, "options", _jsonable(filled))
        return self


class OptimizerConfig(Strict):
    lr: float = Field(1e-3, gt=0, lt=3.4e38, description="peak learning rate (a float32 the optimizer can hold)")
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    clip_grad_norm: float | None = Field(1.0, gt=0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas):
        if not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"each beta must lie in [0, 1), got {list(betas)}")
        return betas


class EarlyStopConfig(Strict):
    metric: str = "accuracy"
    threshold: float = 0.99
    higher_is_better: bool = True


class RunSpec(Strict):
    """What every run kind shares: identity."""

    execution_only: ClassVar[set[str]] = set()  # fields that cannot change a result

    def canonical_json(self) -> str:
        body = _drop_unset_additions(self.model_dump(mode="json", exclude=self.execution_only))
        return json.dumps({"schema": SCHEMA_VERSION, **body}, sort_keys=True, separators=(",", ":"))

    def run_id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


def _drop_unset_additions(body: dict[str, Any]) -> dict[str, Any]:
    for path, default in HASHED_WHEN_SET.items():
        *parents, leaf = path
        node = body
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and node.get(leaf, default) == default:
            node.pop(leaf, None)
    model = body.get("model", {})
    names = [model.get("name")] if isinstance(model.get("name"), str) else sorted(set(model.get("name") or []))
    for name in names:
        options = model.get("options", {}) if isinstance(model.get("name"), str) else model.get("options", {}).get(name, {})
        for option, default in MIXER_OPTIONS_HASHED_WHEN_SET.get(name, {}).items():
            if options.get(option, default) == default:
                options.pop(option, None)
    return body


class TrainConfig(RunSpec):
    execution_only: ClassVar[set[str]] = {"threads", "checkpoint_every"}

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

    @model_validator(mode="after")
    def _match_parameters(self) -> TrainConfig:
        """The solved widths are part of the config, so they are hashed and recorded."""
        if self.model.target_parameters is not None:
            vocab = tasks.TASKS.get_class(self.task.name).vocab_size_of(self.task.options)
            object.__setattr__(self, "model", self.model.matched(vocab))
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
        vocab = tasks.TASKS.get_class(self.task.name).vocab_size_of(self.task.options)
        return _meta_size(self.model._structure(), vocab, self.task.options.get("seq_len"))


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
    decode_prefills: list[int] = Field(default_factory=lambda: [256, 16384])
    measures: list[Literal["forward", "forward_backward", "step"]] = Field(default_factory=lambda: list(MEASURES))

    @model_validator(mode="after")
    def _sorted_lengths(self) -> SpeedSpec:
        if not self.lengths or sorted(self.lengths) != self.lengths or any(length < 1 for length in self.lengths):
            raise ValueError(f"speed.lengths must be positive and increasing, got {self.lengths}")
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
        if not self.lengths or sorted(self.lengths) != self.lengths or self.lengths[0] < 1:
            raise ValueError(f"lengths must be positive and increasing, got {self.lengths}")
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
        if not self.lengths or sorted(self.lengths) != self.lengths or self.lengths[0] < 1:
            raise ValueError(f"lengths must be positive and increasing, got {self.lengths}")
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
