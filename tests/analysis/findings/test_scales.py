"""The findings' scales (analysis/findings/scales.py): every scale has its grid, base and store
folder; the grids are three points, so a best lr at an edge is visible (and extended)."""
from seqbench.analysis.findings.scales import LM_BASE, LR_GRID, SCALES, SEEDS, STATE_BASE, STORE_FOLDER
from seqbench.bench.config import parse_run_config


def test_each_scale_has_a_three_point_grid_a_valid_base_and_its_own_folder():
    assert set(LR_GRID) == set(LM_BASE) == set(STORE_FOLDER) == set(SCALES)
    assert len(set(STORE_FOLDER.values())) == len(SCALES) and len(SEEDS) >= 3
    for scale in SCALES:
        grid = LR_GRID[scale]
        assert len(grid) == 3 and grid == sorted(grid)
    assert parse_run_config({**STATE_BASE, "model": {**STATE_BASE["model"], "name": "gateloop"}}).steps == STATE_BASE["steps"]


def test_state_tracking_is_judged_beyond_the_training_lengths():
    options = STATE_BASE["task"]["options"]
    assert options["test_lengths"][0] == options["max_length"] and max(options["test_lengths"]) >= 4 * options["max_length"]
