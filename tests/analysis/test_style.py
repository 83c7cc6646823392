"""The one plotting style (analysis/style.py): a mixer's colour never depends on which other mixers a
plot shows, a user's mixer gets its own after the built-ins, and chance is drawn where it exists."""
import matplotlib.pyplot as plt

from seqbench import models
from seqbench.analysis.style import draw_chance, mixer_colours


def test_a_mixers_colour_is_the_same_whatever_else_is_plotted():
    every = mixer_colours([*models.available(), "my_package.mine:Mine"])
    assert len(set(every.values())) == len(every)  # all distinct
    for name in models.available():
        assert mixer_colours([name])[name] == every[name] == mixer_colours(["rwkv7", name, "gla"])[name]
    assert mixer_colours(["my_package.mine:Mine"])["my_package.mine:Mine"] == every["my_package.mine:Mine"]


def test_chance_is_a_labelled_dotted_line_and_nothing_without_one():
    figure, axis = plt.subplots()
    draw_chance(axis, None)
    assert len(axis.lines) == 0
    draw_chance(axis, 0.25)
    assert [tuple(line.get_ydata()) for line in axis.lines] == [(0.25, 0.25)] and axis.lines[0].get_linestyle() == ":"
    assert axis.texts[0].get_text() == "chance ≈ 0.25"
    plt.close(figure)
