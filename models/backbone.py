"""LanguageModel: embedding → n residual blocks (mixer, optional MLP) → norm → head.

Blocks are pre-norm (x + f(norm(x)), the default) or post-norm (norm(x + f(x)), the original
Transformer's and, per the re-implementation, the GateLoop paper's); the parameters are the same.

`mixer` is one registered name for every layer, or a list with one name per layer (a hybrid).
`mixer_options` is a flat dict of that mixer's options, or — for a hybrid — a dict keyed by
mixer name. `mode` is likewise a name for every layer or a dict keyed by mixer name.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from seqbench.models import registry

NORMS = ("pre", "post")


class Block(nn.Module):
    def __init__(self, mixer: nn.Module, d_model: int, mlp_hidden: int, norm: str = "pre"):
        super().__init__()
        self.mixer_norm = nn.RMSNorm(d_model)
        self.mixer = mixer
        self.mlp = None
        self.post_norm = norm == "post"
        if mlp_hidden:
            self.mlp_norm = nn.RMSNorm(d_model)
            self.mlp = nn.Sequential(nn.Linear(d_model, mlp_hidden), nn.GELU(), nn.Linear(mlp_hidden, d_model))

    def _mlp(self, x):
        if self.mlp is None:
            return x
        if self.post_norm:
            return self.mlp_norm(x + self.mlp(x))
        return x + self.mlp(self.mlp_norm(x))

    def _mixed(self, x, y):
        return self._mlp(self.mixer_norm(x + y) if self.post_norm else x + y)

    def forward(self, x, mode):
        y, state = self.mixer(x if self.post_norm else self.mixer_norm(x), mode=mode, return_state=True)
        return self._mixed(x, y), state

    def step(self, x_t, state):
        y_t, state = self.mixer.step(x_t if self.post_norm else self.mixer_norm(x_t), state)
        return self._mixed(x_t, y_t), state


class LayerPlan(NamedTuple):
    mixer: str
    options: dict[str, Any]  # every option of the mixer, defaults filled
    mode: str | None  # None: the mixer's default mode


def plan_layers(mixer: str | Sequence[str], n_layers: int, mixer_options: Mapping[str, Any] | None = None,
                mode: str | Mapping[str, str] | None = None) -> list[LayerPlan]:
    """The one place a model's layers are decided (the config, the backbone and the runner use it).

    `mixer`: one name for every layer or one per layer (a hybrid); `mixer_options`: that mixer's
    options, or for a hybrid a dict keyed by mixer name; `mode`: a mode for every layer or a dict
    keyed by mixer name. Unknown names, options and modes fail with the valid ones listed."""
    if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive integer, got {n_layers!r}")
    names = [mixer] * n_layers if isinstance(mixer, str) else list(mixer)
    if len(names) != n_layers:
        raise ValueError(f"a hybrid needs one mixer name per layer: got {len(names)} names for {n_layers} layers")
    for name in names:
        registry.get_class(name)
    options = dict(mixer_options or {})
    if isinstance(mixer, str):
        by_mixer = {mixer: options}
    else:
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"for a hybrid, mixer options are keyed by mixer name; {', '.join(map(repr, unknown))} "
                             f"is not among this model's mixers: {', '.join(sorted(set(names)))}")
        by_mixer = options
    if isinstance(mode, Mapping):
        unknown = sorted(set(mode) - set(names))
        if unknown:
            raise ValueError(f"mode given for mixer(s) {unknown} not in this model: {sorted(set(names))}")
    filled = {}
    for name in set(names):
        given = dict(by_mixer.get(name) or {})
        registry.MIXERS.check_options(name, given)
        filled[name] = {**registry.options(name), **given}
        chosen = mode.get(name) if isinstance(mode, Mapping) else mode
        valid = registry.get_class(name).modes
        if chosen is not None and chosen not in valid:
            raise ValueError(f"unknown mode {chosen!r} for mixer {name!r}; valid modes: {', '.join(valid)}")
    return [LayerPlan(name, filled[name], mode.get(name) if isinstance(mode, Mapping) else mode) for name in names]


class LanguageModel(nn.Module):
    def __init__(
        self,
        *,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        mixer: str | Sequence[str] = "gateloop",
        mixer_options: Mapping[str, Any] | None = None,
        mlp_ratio: int = 4,
        mlp_hidden: int | None = None,
        mode: str | Mapping[str, str] | None = None,
        norm: str = "pre",
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm position {norm!r}; valid: {', '.join(NORMS)}")
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
        if not isinstance(mlp_ratio, int) or mlp_ratio < 0:
            raise ValueError(f"mlp_ratio must be a non-negative integer (0: no MLP), got {mlp_ratio!r}")
        if mlp_hidden is not None and (not isinstance(mlp_hidden, int) or mlp_hidden < 0):
            raise ValueError(f"mlp_hidden must be a non-negative integer (the MLP's width; None: mlp_ratio × d_model), got {mlp_hidden!r}")
        hidden = mlp_ratio * d_model if mlp_hidden is None else mlp_hidden
        self.plan = plan_layers(mixer, n_layers, mixer_options, mode)
        self.mixer_names = [layer.mixer for layer in self.plan]
        self.vocab_size, self.d_model = vocab_size, d_model
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(
            Block(registry.build(layer.mixer, d_model=d_model, **layer.options), d_model, hidden, norm) for layer in self.plan
        )
        self.norm = nn.RMSNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def _modes(self, mode) -> list[str | None]:
        """Per layer: `mode` if given (one name, or a dict by mixer), else the plan's mode."""
        if mode is None:
            return [layer.mode for layer in self.plan]
        return [layer.mode for layer in plan_layers(self.mixer_names, len(self.plan),
                                                    {n: {} for n in set(self.mixer_names)}, mode)]

    def layers(self) -> list[dict]:
        """What each layer runs: mixer, resolved mode and the backend that mode uses here."""
        return [{"mixer": layer.mixer, "mode": block.mixer.resolve_mode(layer.mode),
                 "backend": block.mixer.backend_used(block.mixer.resolve_mode(layer.mode))}
                for layer, block in zip(self.plan, self.blocks)]

    # --- forward and decoding ------------------------------------------------------------------
    def _check_tokens(self, tokens: torch.Tensor, ndim: int):
        shape = "(batch, length)" if ndim == 2 else "(batch,)"
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != ndim or tokens.dtype not in (torch.long, torch.int):
            got = f"{tokens.dtype} {tuple(tokens.shape)}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"expected integer tokens of shape {shape}, got {got}")

    def features(self, tokens: torch.Tensor, mode=None):
        """(what the final norm and head read, per-layer states)."""
        self._check_tokens(tokens, ndim=2)
        x = self.embedding(tokens)
        states = []
        for layer_mode, block in zip(self._modes(mode), self.blocks):
            x, state = block(x, layer_mode)
            states.append(state)
        return x, states

    def prefill(self, tokens: torch.Tensor, mode=None):
        """(logits, per-layer states) for a prompt; decoding continues from the states with `step`."""
        x, states = self.features(tokens, mode)
        return self.head(self.norm(x)), states

    def forward(self, tokens: torch.Tensor, mode=None, *, scored: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, length, vocab); with `scored`, a boolean (batch, length) mask, only the scored
        positions' logits, (n, vocab). Training on a task that scores few positions then skips the head
        on the rest: MQAR scores 1 position in 16 at vocab 8,192, where the head is most of a step."""
        x, _ = self.features(tokens, mode)
        return self.head(self.norm(x if scored is None else x[scored]))

    def init_state(self, batch_size: int, device=None, dtype=None) -> list:
        return [block.mixer.init_state(batch_size, device=device, dtype=dtype) for block in self.blocks]

    def step(self, token: torch.Tensor, states: list):
        """One token per sequence: (logits (batch, vocab), new states)."""
        self._check_tokens(token, ndim=1)
        x = self.embedding(token)
        new_states = []
        for block, state in zip(self.blocks, states):
            x, state = block.step(x, state)
            new_states.append(state)
        return self.head(self.norm(x)), new_states

    def weight_decay_split(self) -> tuple[list[str], list[str]]:
        """(decayed, not decayed) parameter names. Not decayed: embeddings, norms and biases (every
        parameter under 2-D) and each mixer's `no_weight_decay` (decay logits, A_log, Λ, log-steps)."""
        decayed, kept = [], []
        exempt = {f"blocks.{i}.mixer.{name}" for i, block in enumerate(self.blocks) for name in block.mixer.no_weight_decay}
        for name, parameter in self.named_parameters():
            if parameter.ndim < 2 or name.startswith("embedding.") or name in exempt:
                kept.append(name)
            else:
                decayed.append(name)
        return decayed, kept

    # --- reporting -----------------------------------------------------------------------------
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def state_size(self, seq_len: int | None = None) -> int:
        """Real scalars of decoding state per sequence, all layers."""
        return sum(block.mixer.state_size(seq_len) for block in self.blocks)
