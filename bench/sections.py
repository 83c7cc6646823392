"""The sections every run config is made of, and a run's identity.

Strict sections reject unknown fields listing the valid ones; ModelConfig checks every mixer option
value by building the model on PyTorch's meta device (no memory, no compute; each distinct model
once, however many runs share it); TaskConfig checks option values by the task's own
`check_values`. A run's identity (RunSpec.run_id) is the hash of its canonical JSON: the schema
version and every field that can change its result, defaults filled, keys sorted; execution
details are left out, so changing them never re-runs a finished run.
"""
from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seqbench import models, tasks

SCHEMA_VERSION = 2  # bump when a field's meaning changes; every run id changes with it
# Fields and mixer options added after schema 2 enter the hash only when they differ from these
# defaults, so adding an option never changes the id (and so never re-runs) a run that could not set it.
HASHED_WHEN_SET = {("model", "norm"): "pre", ("model", "backbone"): "lm", ("grad_accumulation",): 1, ("task", "data"): None,
                   ("task", "options", "test_seq_len"): None}
MIXER_OPTIONS_HASHED_WHEN_SET = {"gateloop": {"real_transition_sign": False, "state_operator": "complex"},
                                 "retnet": {"backend": "torch"}, "linear_attention": {"backend": "torch"},
                                 "mamba": {"negative_eigenvalues": False}}


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
def meta_model(structure: str, vocab_size: int):
    """The model a ModelConfig's structure describes, built on the meta device (no memory, no
    compute); building it is what checks every mixer option's value."""
    return ModelConfig.model_construct(**json.loads(structure)).build(vocab_size=vocab_size, device="meta")


@functools.lru_cache(maxsize=512)
def meta_size(structure: str, vocab_size: int, seq_len: int | None) -> dict[str, int]:
    model = meta_model(structure, vocab_size)
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
    backbone: Literal["lm", "autoencoder"] = Field("lm", description="lm: causal next-token model; autoencoder: encode, "
                                                                      "decode every token from the last position (MAD's compression)")

    @model_validator(mode="after")
    def _plan_and_check_values(self) -> ModelConfig:
        plan = models.plan_layers(self.name, self.n_layers, self.options, self.mode)
        filled = {layer.mixer: layer.options for layer in plan}
        options = filled[plan[0].mixer] if isinstance(self.name, str) else dict(sorted(filled.items()))
        object.__setattr__(self, "options", _jsonable(options))
        meta_model(self.structure(), 2)  # option values: each mixer's constructor checks its own
        return self

    def structure(self) -> str:
        """What the built model depends on, as text: the key of the meta-device builds (a sweep of
        10,000 runs over lr and seeds builds each distinct model once, not 20,000 times)."""
        return json.dumps(self.model_dump(mode="json", exclude={"target_parameters"}), sort_keys=True)

    def plan(self) -> list[models.LayerPlan]:
        return models.plan_layers(self.name, self.n_layers, self.options, self.mode)

    def build(self, *, vocab_size: int, device=None) -> models.LanguageModel:
        import torch

        from seqbench.models.autoencoder import AutoEncoder

        backbone = AutoEncoder if self.backbone == "autoencoder" else models.LanguageModel
        with torch.device(device or "cpu"):
            return backbone(vocab_size=vocab_size, d_model=self.d_model, n_layers=self.n_layers,
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
    data: dict[str, Any] | None = Field(None, description="set from the data itself (a corpus's file, size and sha256): part of the run's identity")

    @model_validator(mode="after")
    def _fill_and_check(self) -> TaskConfig:
        tasks.TASKS.check_options(self.name, self.options)
        filled = {**tasks.options(self.name), **self.options}
        task_class = tasks.TASKS.get_class(self.name)
        task_class.check_values(filled)
        object.__setattr__(self, "options", _jsonable(filled))
        identity = task_class.content_identity(filled)
        if self.data is not None and identity is not None and self.data != identity:
            raise ValueError(f"task.data {self.data} does not describe the data these options read, {identity} "
                             "(the file changed since the config was written)")
        object.__setattr__(self, "data", identity)
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


def increasing_lengths(name: str, lengths: list[int]) -> list[int]:
    """The one check of a benchmark's lengths: non-empty, positive, increasing."""
    if not lengths or sorted(lengths) != lengths or lengths[0] < 1:
        raise ValueError(f"{name} must be positive and increasing, got {lengths}")
    return lengths
