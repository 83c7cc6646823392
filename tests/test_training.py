"""Every model learns: a tiny LM of each mixer lowers its loss on CPU (a generous bar, not a timing)."""
import pytest

import models
from bench.config import parse_run_config
from bench.runner import run_in_foreground
from bench.store import RunDir
from tests.conftest import tiny_run_config


@pytest.mark.parametrize("name", models.available())
def test_tiny_lm_of_every_mixer_trains_with_falling_loss(name, tmp_path):
    options = {"gateloop": {"heads": 8}, "retnet": {"heads": 2}, "linear_attention": {"heads": 2},
               "softmax_attention": {"heads": 2}, "s5": {"state_dim": 16}, "mamba": {"d_state": 4}}[name]
    config = parse_run_config(tiny_run_config(
        model={"name": name, "d_model": 32, "n_layers": 2, "options": options},
        steps=200, batch_size=16, eval_every=200, checkpoint_every=200, optimizer={"lr": 3e-3}))
    run_in_foreground(config, root=tmp_path, progress=False)
    losses = [r["loss"] for r in RunDir(tmp_path, "single", config.run_id()).read_metrics() if r["split"] == "train"]
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < first - 0.5, f"{name}: loss {first:.3f} → {last:.3f}"
