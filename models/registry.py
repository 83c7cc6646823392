"""The mixer registry: `@register("name")` on a Mixer subclass; options are its constructor's
keyword-only arguments (the generic Registry lives in seqbench/core.py, tasks have their own).
Mixers from outside the package: the entry-point group `seqbench.mixers`, or a name that is an
import path, "my_package.my_module:MyMixer"."""
from __future__ import annotations

from typing import Any

from seqbench.core import Registry
from seqbench.models.base import Mixer

MIXERS = Registry("mixer", reserved=("d_model",), base=Mixer, entry_points="seqbench.mixers")
register, available, get_class, options, describe = (
    MIXERS.register, MIXERS.available, MIXERS.get_class, MIXERS.options, MIXERS.describe)


def build(name: str, *, d_model: int, **mixer_options: Any):
    if not isinstance(d_model, int) or d_model < 1:
        raise ValueError(f"d_model must be a positive integer, got {d_model!r}")
    return MIXERS.build(name, d_model=d_model, **mixer_options)
