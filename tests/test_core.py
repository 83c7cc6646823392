"""What every layer shares (seqbench/core.py): the registry's errors name the valid choices, options
are keyword-only constructor arguments, writes are atomic and leave no temporaries."""
import inspect
import json

import pytest

from seqbench.cli import format_registry
from seqbench.core import Registry, atomic_write, atomic_write_json, check_choice, strict_json


class Base:
    """The base class a test registry accepts (a stand-in for Mixer or Task)."""


class Sub(Base):
    """A class of the base, found by its import path."""


def make_registry():
    registry = Registry("widget", reserved=("size",), base=Base)

    @registry.register("round")
    class Round(Base):
        """A round widget.

        Options:
            radius: how round
        """

        def __init__(self, *, size: int, radius: float = 1.0, colour: str):
            self.size, self.radius, self.colour = size, radius, colour

    return registry, Round


def test_names_options_and_their_errors():
    registry, cls = make_registry()
    assert registry.available() == ["round"] and registry.get_class("round") is cls
    assert registry.options("round") == {"radius": 1.0, "colour": inspect.Parameter.empty}  # size is reserved
    widget = registry.build("round", size=3, colour="red")
    assert (widget.size, widget.radius, widget.colour) == (3, 1.0, "red")
    with pytest.raises(ValueError, match="unknown widget 'square'; valid widgets: round"):
        registry.get_class("square")
    with pytest.raises(ValueError, match="unknown option\\(s\\) 'radios' for widget 'round'; valid options: colour, radius"):
        registry.build("round", size=3, colour="red", radios=2)
    with pytest.raises(ValueError, match="widget 'round' needs option\\(s\\): colour"):
        registry.build("round", size=3)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("round")(type("Other", (Base,), {}))


def test_an_import_path_names_a_class_and_each_wrong_part_is_said():
    registry, _ = make_registry()
    assert registry.get_class("tests.test_core:Sub") is Sub and "tests.test_core:Sub" not in registry.available()
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_here'"):
        registry.get_class("no_such_module_here:X")
    with pytest.raises(ValueError, match="module 'json' has no attribute 'Nope'"):
        registry.get_class("json:Nope")
    with pytest.raises(ValueError, match="json:JSONDecoder is a class JSONDecoder, not a subclass of tests.test_core.Base"):
        registry.get_class("json:JSONDecoder")


def test_the_listing_shows_defaults_required_options_and_meanings():
    registry, _ = make_registry()
    text = format_registry(registry.describe())  # what `seqbench models` prints
    assert "round" in text and "radius = 1.0  — how round" in text and "colour = (required)" in text


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_json(path, {"status": "completed"})

    def fail(out):
        out.write(b'{"status": "runn')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert json.loads(path.read_text()) == {"status": "completed"} and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_json_is_strict_and_choices_name_the_valid_values():
    assert strict_json({"a": float("nan")}) == {"a": None}
    with pytest.raises(ValueError, match="gla: unknown mode 'fast'; valid: recurrent, chunked"):
        check_choice("gla", "mode", "fast", ("recurrent", "chunked"))
