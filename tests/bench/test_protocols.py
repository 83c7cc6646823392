"""The published protocols (bench/protocols.py), each defined once: MAD as mad-lab's configs set it,
Zoology's MQAR grid, their cpu reductions, and the sweep files that name them."""
import re
import tomllib
from pathlib import Path

import pytest

from seqbench.bench import protocols
from seqbench.bench.sweep import expand, load_sweep

REPO = Path(__file__).resolve().parents[2]


def test_mad_is_mad_labs_baseline_with_its_difficulty_changes_and_training():
    memorization = protocols.mad_sweep("memorization", "mad")
    assert memorization["base"]["task"]["options"]["num_train_examples"] == 256  # mad-lab configs/tasks/memorization.yml
    assert memorization["base"]["steps"] == 200 * 256 // 128  # 200 epochs at batch 128
    assert memorization["vary"] == {"task.options.vocab_size": [512, 1024, 2048, 4096, 8192]}
    recall = protocols.mad_sweep("in_context_recall", "mad")
    assert recall["base"]["steps"] == 200 * 12_800 // 128 and recall["base"]["model"]["d_model"] == 128
    assert recall["grid"] == {"optimizer.lr": [1e-4, 5e-4, 1e-3], "optimizer.weight_decay": [0.0, 0.1]}
    assert recall["base"]["optimizer"] == {"schedule": "cosine", "min_lr_ratio": 0.002, "warmup_steps": 0}
    assert protocols.mad_sweep("compression", "mad")["base"]["model"]["backbone"] == "autoencoder"


@pytest.mark.parametrize("task", list(protocols.MAD_TASKS))
def test_the_cpu_reduction_keeps_each_tasks_baseline_and_tunes_on_three_lrs(task):
    reduced, source = protocols.mad_sweep(task, "cpu"), protocols.mad_sweep(task, "mad")
    options = {k: v for k, v in reduced["base"]["task"]["options"].items() if k != "num_test_examples"}
    assert options == protocols.MAD_TASKS[task]["baseline"] == {k: v for k, v in source["base"]["task"]["options"].items()
                                                                if k != "num_test_examples"}
    assert len(reduced["grid"]["optimizer.lr"]) >= 3 and "vary" not in reduced
    assert len(expand({**reduced, "grid": {"model.name": ["gateloop"], **reduced["grid"]}}).runs) == 3


def test_the_cpu_mqar_grid_is_zoologys_cut_to_its_smallest_cells_and_widths():
    zoology, cpu = protocols.MQAR_SCALES["zoology"], protocols.MQAR_SCALES["cpu"]
    assert cpu["cells"] == zoology["cells"][:2] and cpu["widths"] == zoology["widths"][:2]
    assert cpu["lrs"] == zoology["lrs"][-3:]  # three points: a choice at an edge shows
    spec = protocols.mqar_sweep("cpu", mixers=["gateloop", "retnet"])
    assert len(expand(spec).runs) == 2 * 2 * 3 * 2


def test_every_mad_and_zoology_sweep_file_names_its_protocol_and_expands_to_it():
    """A grep finds one definition: the files say which protocol, bench/protocols.py says what it is."""
    files = sorted([*(REPO / "sweeps" / "mad").glob("*.toml"), *(REPO / "sweeps").glob("mqar-zoology*.toml")])
    assert len(files) == 8
    for path in files:
        data = tomllib.loads(path.read_text())
        assert set(data) <= {"protocol", "scale", "name", "seeds", "grid", "executor"}, path
        expected = protocols.protocol_sweep(data["protocol"], mixers=data["grid"]["model.name"])
        assert {r.run_id() for r in load_sweep(path).runs} == {r.run_id() for r in expand({**expected, "name": data["name"]}).runs}
    for path in REPO.glob("sweeps/**/*.toml"):  # nowhere else spells MAD's grid or Zoology's cells
        text = path.read_text()
        assert not re.search(r"num_train_examples\s*=\s*12800|\"task.options.num_pairs\"\s*=\s*\[4, 8", text), path


def test_a_protocol_file_refuses_what_the_protocol_defines(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('protocol = "mad/memorization"\nname = "m"\n[base]\nsteps = 5\n')
    with pytest.raises(ValueError, match="'base' cannot be set beside 'protocol'"):
        load_sweep(path)
    path.write_text('protocol = "mad/memorisation"\nname = "m"\n')
    with pytest.raises(ValueError, match="unknown protocol 'mad/memorisation'; valid: mad/memorization"):
        load_sweep(path)
    path.write_text('protocol = "mqar/cpu"\nscale = "cpu"\nname = "m"\n')
    with pytest.raises(ValueError, match="names its scale"):
        load_sweep(path)
    path.write_text('protocol = "mqar/cpu"\nname = "m"\n[grid]\n"optimizer.lr" = [1e-3]\n')
    with pytest.raises(ValueError, match="optimizer.lr is an axis of protocol 'mqar/cpu'"):
        load_sweep(path)
    path.write_text('protocol = "mad/memorization"\nscale = "cpu"\nname = "m"\n[grid]\n"model.name" = ["gateloop"]\n')
    assert len(load_sweep(path).runs) == 3  # a cpu-scale MAD sweep: 3 lrs × weight decay 0
    assert load_sweep(path, ["steps=7"]).runs[0].steps == 7  # --set still overrides the base
