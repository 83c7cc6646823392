"""A run's identity (bench/sections.py): the hash of its validated config — fields that cannot change
a result (threads, checkpointing, tracking) left out, fields added later hashed only when set away
from their default (old runs keep their ids), unknown fields refused with the valid ones."""
import pytest

from seqbench.bench.config import parse_run_config
from seqbench.bench.sections import SCHEMA_VERSION
from tests.helpers import tiny_run_config


def run_id(**changes) -> str:
    return parse_run_config(tiny_run_config(**changes)).run_id()


def test_what_cannot_change_a_result_leaves_the_id_alone():
    assert run_id() == run_id(threads=2) == run_id(checkpoint_every=7)
    assert run_id() != run_id(seed=1) and run_id() != run_id(steps=21)


def test_a_field_added_later_is_hashed_only_when_set_away_from_its_default():
    base = tiny_run_config()
    assert run_id() == run_id(grad_accumulation=1) == run_id(model={**base["model"], "norm": "pre"})
    assert run_id() != run_id(grad_accumulation=2) and run_id() != run_id(model={**base["model"], "norm": "post"})
    assert f'"schema":{SCHEMA_VERSION}' in parse_run_config(base).canonical_json()


def test_an_unknown_field_is_refused_naming_it():
    with pytest.raises(ValueError, match="stepz"):
        parse_run_config({**tiny_run_config(), "stepz": 3})
