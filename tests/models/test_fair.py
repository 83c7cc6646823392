"""Parameter matching (models/fair.py): solved widths hit the target, impossible targets fail loudly, and
as a sweep feature every mixer, a hybrid and GateLoop's ablations land within ±2%."""
import json

import pytest

from seqbench import models
from seqbench.bench.sweep import expand
from seqbench.cli import main
from seqbench.models.fair import count_parameters, solve_widths

ABLATIONS = [{"state_transition": "none"}, {"state_transition": "fixed"}, {"complex_transition": False},
             {"kv_projection": "joint"}, {"heads": 4}, {"output_gate": False}, {"short_conv": 4}]


def matched_sweep(d_model: int, target: int, vocab: int) -> dict:
    base = {"model": {"d_model": d_model, "n_layers": 2, "mlp_ratio": 2, "target_parameters": target},
            "task": {"name": "mqar", "options": {"vocab_size": vocab, "seq_len": 64, "num_pairs": 4}}, "steps": 10}
    return {"name": "matched", "seeds": [0], "base": base, "zip": {
        "model.name": ["gateloop", "s5", "retnet", "linear_attention", "softmax_attention", "mamba",
                       ["gateloop", "softmax_attention"], *["gateloop"] * len(ABLATIONS)],
        "model.options": [{}, {}, {}, {}, {}, {}, {}, *ABLATIONS]}}


@pytest.mark.parametrize("d_model,target,vocab", [(64, 60_000, 128), (512, 14_163_456, 8192)], ids=["demo size", "d_model 512"])
def test_every_run_of_a_matched_sweep_is_within_two_percent(tmp_path, capsys, d_model, target, vocab):
    spec = matched_sweep(d_model, target, vocab)
    sweep = expand(spec)
    assert len(sweep.runs) == 14
    for run in sweep.runs:
        assert abs(run.size()["parameters"] - target) / target <= 0.02, run.model
    lines = ['name = "matched"', "seeds = [0]", "[base]", "steps = 10",
             f"model = {{ d_model = {d_model}, n_layers = 2, mlp_ratio = 2, target_parameters = {target} }}",
             f'task = {{ name = "mqar", options = {{ vocab_size = {vocab}, seq_len = 64, num_pairs = 4 }} }}', "[zip]",
             '"model.name" = ' + json.dumps(spec["zip"]["model.name"]),
             '"model.options" = [' + ", ".join("{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in o.items()) + "}"
                                                for o in spec["zip"]["model.options"]) + "]"]
    path = tmp_path / "matched.toml"
    path.write_text("\n".join(lines) + "\n")  # the same sweep as a file, through the command line
    main(["--root", str(tmp_path), "sweep", str(path), "--dry-run", "--json"])
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 14
    assert all(abs(run["parameters"] - target) / target <= 0.02 for run in runs)
    assert all(run["config"]["model"]["mlp_hidden"] and run["state_size"] > 0 for run in runs)


# --- fair comparison ----------------------------------------------------------------------------
@pytest.mark.parametrize("mixer", models.available())
def test_solved_widths_hit_the_target_within_two_percent(mixer):
    target = count_parameters(vocab_size=256, d_model=128, n_layers=2, mixer="gateloop", mlp_ratio=2)
    d_model, hidden, count = solve_widths(target, mlp_ratio=2, vocab_size=256, n_layers=2, mixer=mixer)
    assert count == count_parameters(vocab_size=256, d_model=d_model, n_layers=2, mixer=mixer, mlp_hidden=hidden)
    assert abs(count - target) / target <= 0.02 and 1 <= hidden / d_model <= 3


def test_matching_fails_loudly_when_impossible():
    with pytest.raises(ValueError, match="needs an MLP"):
        solve_widths(10_000, mlp_ratio=0, vocab_size=256, n_layers=2, mixer="gateloop")
    with pytest.raises(ValueError, match="no width gives gateloop within ±2% of 10 parameters"):
        solve_widths(10, mlp_ratio=2, vocab_size=256, n_layers=2, mixer="gateloop")
