"""One plotting style, defined once: each mixer's colour (the same in every plot the project
writes, a user's mixer included) and the chance line every accuracy plot draws."""
from __future__ import annotations

import seaborn as sns


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
