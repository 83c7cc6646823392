"""Live curves (bench/tracking.py): TensorBoard event files whose scalars are metrics.jsonl's, a W&B
run in offline mode under the run's own id, and a missing package named at config time."""
import json
import math

import pytest

from seqbench.bench.config import parse_run_config
from seqbench.bench.runner import run_in_foreground
from seqbench.bench.store import Store
from tests.helpers import tiny_run_config


def test_tensorboard_events_hold_exactly_the_metrics_of_the_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = parse_run_config(tiny_run_config(steps=12, eval_every=4, tracking=["tensorboard"]))
    assert config.run_id() == parse_run_config(tiny_run_config(steps=12, eval_every=4)).run_id()  # a view, not an identity
    run_in_foreground(config, root=tmp_path, progress=False)
    run_dir = Store(tmp_path).run("single", config.run_id())
    events = EventAccumulator(str(run_dir.path / "tensorboard"))
    events.Reload()
    logged = {tag: {event.step: event.value for event in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    expected: dict = {}
    for row in run_dir.read_metrics():
        for key, value in row.items():
            if key not in ("step", "split"):
                expected.setdefault(f"{row['split']}/{key}", {})[row["step"]] = value
    assert set(logged) == set(expected) and {"train/loss", "validation/accuracy"} <= set(logged)
    for tag, by_step in expected.items():
        assert logged[tag].keys() == by_step.keys(), tag
        assert all(math.isclose(logged[tag][step], value, rel_tol=1e-6, abs_tol=1e-7) for step, value in by_step.items()), tag


def test_a_wandb_run_in_offline_mode_is_the_runs_id_and_holds_its_last_values(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = parse_run_config(tiny_run_config(steps=6, eval_every=3, tracking=["wandb"]))
    run_in_foreground(config, root=tmp_path, progress=False)
    run_dir = Store(tmp_path).run("single", config.run_id())
    [offline] = list((run_dir.path / "wandb").glob(f"offline-run-*-{config.run_id()}"))
    records = wandb_records(offline / f"run-{config.run_id()}.wandb")
    assert [r.run.run_id for r in records if r.WhichOneof("record_type") == "run"][0] == config.run_id()
    history = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history[items["_step"]] = items
    for row in run_dir.read_metrics():  # every row of metrics.jsonl, at its step, in W&B's history
        for key, value in row.items():
            if key not in ("step", "split"):
                assert history[row["step"]][f"{row['split']}/{key}"] == pytest.approx(value), (row["step"], key)


def wandb_records(path):
    """The protobuf records of a W&B transaction log (.wandb): a 7-byte header, then LevelDB-style
    blocks of 32 KiB holding records of (crc32, length, type) + data, type 1 whole, 2–4 in pieces."""
    from wandb.proto import wandb_internal_pb2

    raw, offset, records, pieces = path.read_bytes(), 7, [], b""
    assert raw[:4] == b":W&B"
    while offset + 7 <= len(raw):
        if 32768 - offset % 32768 < 7:  # a block's tail too short for a header is padding
            offset += 32768 - offset % 32768
            continue
        length, kind = int.from_bytes(raw[offset + 4:offset + 6], "little"), raw[offset + 6]
        data, offset = raw[offset + 7:offset + 7 + length], offset + 7 + length
        pieces = data if kind in (1, 2) else pieces + data
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            records.append(record)
    return records


def test_a_tracker_whose_package_is_missing_fails_at_config_time_with_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match="tracking 'wandb' needs the package 'wandb'.*pip install wandb"):
        parse_run_config(tiny_run_config(tracking=["wandb"]))
    with pytest.raises(ValueError, match="unknown tracker 'mlflow'; valid: tensorboard, wandb"):
        parse_run_config(tiny_run_config(tracking=["mlflow"]))
