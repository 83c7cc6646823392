"""The mixer registry (models/registry.py): every built-in mixer documents each option it takes, its
default mode is one of its modes, and a bad width is refused before a layer is made."""
import pytest

from seqbench import models


def test_every_built_in_option_is_documented_and_every_default_mode_is_a_mode():
    for row in models.describe():
        if row["origin"] != "built-in":
            continue
        undocumented = sorted(set(row["options"]) - set(row["option_docs"]))
        assert undocumented == [], (row["name"], undocumented)
        assert row["default_mode"] in row["modes"] and row["summary"], row["name"]


def test_a_width_that_is_not_a_positive_integer_is_refused():
    for bad in (0, -4, 16.0, "16"):
        with pytest.raises(ValueError, match="d_model must be a positive integer"):
            models.build("gla", d_model=bad)
    with pytest.raises(ValueError, match="unknown mode 'fast' for mixer 'gla'; valid modes: "):
        models.build("gla", d_model=16)(__import__("torch").zeros(1, 3, 16), mode="fast")
