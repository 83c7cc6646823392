"""Run configs (bench/config.py): identity by canonical hash, clear errors, ids stable as options are added."""
import json
from pathlib import Path

import pytest

from seqbench.bench.config import parse_run_config
from tests.helpers import tiny_run_config


# --- config -------------------------------------------------------------------------------------
def test_run_id_is_the_hash_of_the_canonical_config():
    explicit = parse_run_config(tiny_run_config(model={"options": {"heads": 2, "chunk_size": 64}}, seed=0))
    implicit = parse_run_config(tiny_run_config())
    assert explicit.run_id() == implicit.run_id()  # defaults filled in before hashing
    assert parse_run_config(tiny_run_config(threads=2)).run_id() == implicit.run_id()  # execution detail only
    assert parse_run_config(tiny_run_config(seed=1)).run_id() != implicit.run_id()
    assert json.loads(implicit.canonical_json())["task"]["options"]["power"] == 0.01


@pytest.mark.parametrize("change,message", [
    ({"stepz": 3}, "unknown field\\(s\\) 'stepz' in TrainConfig; valid fields: autocast, batch_size"),
    ({"model": {"name": "lstm"}}, "unknown mixer 'lstm'; valid mixers"),
    ({"model": {"options": {"head": 2}}}, "unknown option\\(s\\) 'head' for mixer 'retnet'"),
    ({"model": {"mode": "scan"}}, "unknown mode 'scan' for mixer 'retnet'; valid modes: parallel, recurrent, chunked"),
    ({"optimizer": {"schedule": "linear"}}, "optimizer.schedule: Input should be 'cosine' or 'constant'"),
    ({"task": {"name": "mqar", "options": {"pairs": 2}}}, "unknown option\\(s\\) 'pairs' for task 'mqar'"),
    ({"device": "tpu"}, "device: Input should be 'auto', 'cpu' or 'cuda'"),
])
def test_bad_configs_give_clear_errors(change, message):
    with pytest.raises(ValueError, match=message):
        parse_run_config(tiny_run_config(**change))


def test_options_added_later_leave_every_earlier_run_id_unchanged():
    """Committed results name run ids; a field added since (at its default) must not change them."""
    import pandas as pd

    from seqbench.bench.sweep import load_sweep

    root = Path(__file__).parents[2]
    for name in ("demo-mqar", "mqar-gateloop-recall"):
        sweep_file = root / "sweeps" / f"{'demo' if name == 'demo-mqar' else name}.toml"
        committed = set(pd.read_csv(root / "results" / name / "runs.csv")["run_id"])
        assert {run.run_id() for run in load_sweep(sweep_file).runs} == committed
    gateloop = tiny_run_config(model={"name": "gateloop", "options": {}})
    body = json.loads(parse_run_config(gateloop).canonical_json())
    assert "grad_accumulation" not in body and "norm" not in body["model"]
    assert "state_operator" not in body["model"]["options"] and "chunk_size" in body["model"]["options"]
    changed = [tiny_run_config(grad_accumulation=2), tiny_run_config(model={"norm": "post"}),
               tiny_run_config(model={"name": "gateloop", "options": {"state_operator": "real_part"}})]
    assert len({parse_run_config(c).run_id() for c in [tiny_run_config(), *changed]}) == 4


def test_structural_sizes_are_bounded_before_any_model_is_built():
    import time

    started = time.perf_counter()
    with pytest.raises(ValueError, match="model.n_layers: Input should be less than or equal to 1024"):
        parse_run_config(tiny_run_config(model={"n_layers": 100_000}))
    assert time.perf_counter() - started < 1.0


def test_two_different_files_under_one_name_are_two_runs_and_the_run_records_the_content(tmp_path):
    first, second = tmp_path / "a" / "corpus.txt", tmp_path / "b" / "corpus.txt"
    for path, text in ((first, b"the first corpus " * 100), (second, b"another corpus! " * 100)):
        path.parent.mkdir()
        path.write_bytes(text)

    def config(data_dir):
        return parse_run_config(tiny_run_config(task={"name": "bytes", "options": {"path": "corpus.txt", "data_dir": str(data_dir),
                                                                                   "seq_len": 16}}))

    one, other = config(first.parent), config(second.parent)
    import hashlib

    assert one.task.data == {"file": "corpus.txt", "bytes": 1700, "sha256": hashlib.sha256(first.read_bytes()).hexdigest()}
    assert one.run_id() != other.run_id() and one.task.data["sha256"] != other.task.data["sha256"]
    moved = second.parent / "same.txt"
    moved.write_bytes(first.read_bytes())
    assert parse_run_config(tiny_run_config(task={"name": "bytes", "options": {"path": str(moved), "seq_len": 16}})).task.data["sha256"] \
        == one.task.data["sha256"]
    with pytest.raises(ValueError, match="does not describe the data these options read"):
        parse_run_config({**one.model_dump(mode="json"), "task": {**one.task.model_dump(mode="json"), "data": other.task.data}})
    with pytest.raises(ValueError, match="no such file"):
        parse_run_config(tiny_run_config(task={"name": "bytes", "options": {"path": str(tmp_path / "nowhere.txt")}}))


def test_decode_is_timed_within_the_lengths_asked_for():
    """speed.decode_prefills defaults to the shortest and the longest of speed.lengths (never 16,384 when
    the lengths stop at 1,024), and an unchanged default keeps the run ids the old default gave."""
    short = parse_run_config({"kind": "speed", "model": {"name": "gateloop", "d_model": 16}, "speed": {"lengths": [256, 1024]}})
    assert short.speed.decode_prefills == [256, 1024]
    default = parse_run_config({"kind": "speed", "model": {"name": "gateloop", "d_model": 16}})
    assert default.speed.decode_prefills == [256, 16384] and default.run_id() == "a400579a6fb85692"
