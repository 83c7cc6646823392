"""One plotting style, defined once: each mixer's colour (the same in every plot the project
writes, a user's mixer included) and the chance line every accuracy plot draws."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import seaborn as sns

from seqbench.core import atomic_write


def mixer_colours(names) -> dict:
    """One colour per mixer, the same in every plot: the registered mixers in registry order, any other
    (a user's mixer, a hybrid) after them."""
    from seqbench import models

    known = models.available()
    ordered = [*known, *sorted(set(map(str, names)) - set(known))]
    palette = [*sns.color_palette("tab10"), *sns.color_palette("Dark2"), *sns.color_palette("husl", max(0, len(ordered) - 18))]
    return {name: palette[number] for number, name in enumerate(ordered) if name in set(map(str, names))}


def draw_chance(axis, chance: float | None) -> None:
    """The task's chance level as a dotted grey line, labelled; nothing where the task has none."""
    if chance is None:
        return
    axis.axhline(chance, color="0.5", linestyle=":", linewidth=1)
    axis.annotate(f"chance ≈ {chance:.3g}", (0.01, chance), xycoords=("axes fraction", "data"), fontsize=7, color="0.4", va="bottom")


# The test slices that measure length generalisation, one kind per task family: the column pattern (its
# group is the length), the metric kind, the axes' words and the option that holds the training length.
LENGTH_SLICES = (
    {"pattern": re.compile(r"final_accuracy/end/L(\d+)$"), "metric": "final_accuracy", "y": "accuracy of the final state (test)",
     "x": "test word length", "trained": "task.options.max_length", "trained_label": "longest training word", "lengths": 1},
    {"pattern": re.compile(r"final_accuracy/L(\d+)_N\d+$"), "metric": "final_accuracy", "y": "MQAR test accuracy",
     "x": "test sequence length", "trained": "task.options.seq_len", "trained_label": "training length", "lengths": 2},
    {"pattern": re.compile(r"final_bpc/to(\d+)$"), "metric": "final_bpc", "y": "test bits per byte",
     "x": "position in the test window (bucket end)", "trained": "task.options.seq_len", "trained_label": "training length",
     "lengths": 1},
)


def length_slices(columns) -> tuple[dict, dict | None]:
    """(column → length, its kind) for the first kind of length slice among `columns` ({} and None
    when there is none). MQAR's slices count only where it was tested at more than one length (every
    MQAR run has the slice of its own test configuration)."""
    for kind in LENGTH_SLICES:
        found = {column: int(match.group(1)) for column in columns if (match := kind["pattern"].match(str(column)))}
        if len(set(found.values())) >= kind["lengths"]:
            return found, kind
    return {}, None


def atomic_save_figure(figure, path: Path, **savefig: Any) -> Path:
    """A matplotlib figure saved atomically (a killed plot never leaves a truncated PNG in results/);
    a PNG carries its figure's title as its `Title` text, so what a plot states can be read back."""
    path = Path(path)
    fmt = savefig.pop("format", path.suffix.lstrip(".") or "png")
    if fmt == "png" and figure.get_suptitle():
        savefig["metadata"] = {**savefig.get("metadata", {}), "Title": figure.get_suptitle()}
    atomic_write(path, lambda out: figure.savefig(out, format=fmt, **savefig))
    return path
