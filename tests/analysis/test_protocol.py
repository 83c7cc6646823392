"""Best-over-lr on validation, paired intervals over seeds, and plots that pool no axis."""
import math
import warnings

import pandas as pd
import pytest

from seqbench.analysis.plots import _layout, final_table, plot_final
from seqbench.analysis.protocol import best_over_lr, choose_lr, interval, paired_differences, t_interval


def runs_table() -> pd.DataFrame:
    """2 models × 3 lr × 3 seeds. Model a: validation best at lr 1e-3 (middle), its test there is 0.80+seed/100;
    at lr 1e-2 its *test* would be higher (0.95) but validation says no. Model b: best at the top edge (1e-2)."""
    rows = []
    for seed in range(3):
        for lr, (val_a, test_a), (val_b, test_b) in [
            (1e-4, (0.50, 0.50), (0.40, 0.40)), (1e-3, (0.90, 0.80), (0.50, 0.50)), (1e-2, (0.70, 0.95), (0.60, 0.55))]:
            rows.append({"run_id": f"a{seed}{lr}", "model.name": "a", "optimizer.lr": lr, "seed": seed, "status": "completed",
                         "validation_accuracy": val_a, "final_accuracy": test_a + seed / 100})
            rows.append({"run_id": f"b{seed}{lr}", "model.name": "b", "optimizer.lr": lr, "seed": seed, "status": "completed",
                         "validation_accuracy": val_b, "final_accuracy": test_b + seed / 50})
    return pd.DataFrame(rows)


def test_best_over_lr_picks_on_validation_reports_test_and_flags_an_edge_lr():
    with pytest.warns(UserWarning, match="edge of the grid for: model.name=b"):
        best = best_over_lr(runs_table(), metric="final_accuracy")
    assert len(best) == 6
    a = best[best["model.name"] == "a"].sort_values("seed")
    assert list(a["chosen_lr"]) == [1e-3] * 3  # not 1e-2, whose test number is higher
    assert list(a["final_accuracy"]) == pytest.approx([0.80, 0.81, 0.82]) and not a["lr_at_edge"].any()
    b = best[best["model.name"] == "b"]
    assert set(b["chosen_lr"]) == {1e-2} and b["lr_at_edge"].all()
    assert set(best["protocol"]) == {"best lr on mean validation over seeds (validation_accuracy), final_accuracy reported"}


def test_paired_interval_comes_from_per_seed_differences():
    with pytest.warns(UserWarning):
        best = best_over_lr(runs_table(), metric="final_accuracy")
    differences = paired_differences(best, arm="model.name", a="a", b="b", value="final_accuracy")
    expected = [0.80 - 0.55, 0.81 - 0.57, 0.82 - 0.59]
    assert list(differences) == pytest.approx(expected)
    mean, low, high = interval(differences)
    assert mean == pytest.approx(sum(expected) / 3)
    # t(0.975, 2) = 4.303; sd of the differences = 0.01
    half = 4.302652729911275 * 0.01 / math.sqrt(3)
    assert (low, high) == pytest.approx((mean - half, mean + half))
    lower_is_better = paired_differences(best.assign(final_bpc=best["final_accuracy"]), arm="model.name", a="a", b="b",
                                         value="final_bpc")
    assert list(lower_is_better) == pytest.approx([-d for d in expected])  # signed so that positive favours a
    assert all(math.isnan(v) for v in t_interval([1.0]))


def test_a_plot_of_a_sweep_with_two_varying_axes_shows_both(tmp_path):
    rows = [{"run_id": f"{m}{h}{s}", "model.name": m, "model.options.heads": h, "seed": s, "status": "completed",
             "final_accuracy": 0.5 + 0.1 * h + 0.01 * s} for m in ("gateloop", "retnet") for h in (1, 2) for s in range(3)]
    table, metric, _, protocol = final_table(pd.DataFrame(rows))
    assert _layout(["model.options.heads", "model.name"]) == {"x": "model.name", "hue": "model.options.heads", "col": None, "row": None}
    assert protocol == "as run" and len(table) == 12
    assert plot_final(pd.DataFrame(rows), tmp_path / "final.png").exists()
    with pytest.raises(ValueError, match="5 sweep axes vary"):
        _layout(["a", "b", "c", "d", "e"])


def test_final_plot_uses_best_over_lr_when_the_lr_is_swept(tmp_path):
    with pytest.warns(UserWarning):
        table, _, _, protocol = final_table(runs_table())
        assert plot_final(runs_table(), tmp_path / "final.png").exists()
    assert protocol == "best lr per configuration, chosen on mean validation over seeds" and "chosen_lr" in table.columns


def test_an_lr_set_per_configuration_is_not_a_selection():
    runs = runs_table()
    fixed = runs[((runs["model.name"] == "a") & (runs["optimizer.lr"] == 1e-3)) | ((runs["model.name"] == "b") & (runs["optimizer.lr"] == 1e-2))]
    table, _, _, protocol = final_table(fixed)
    assert protocol == "one lr per configuration, set in the sweep" and len(table) == 6


def disagreeing_table() -> pd.DataFrame:
    """One model, 2 lrs, 3 seeds: per seed, lr 1e-2 wins seeds 0 and 1 (by 0.01) and loses seed 2 by
    0.30, so a per-seed choice takes 1e-2 twice; the mean over seeds (0.80 vs 0.71) takes 1e-3 for all."""
    validation = {1e-3: [0.80, 0.80, 0.80], 1e-2: [0.81, 0.81, 0.50]}
    return pd.DataFrame([{"run_id": f"{lr}-{seed}", "model.name": "m", "optimizer.lr": lr, "seed": seed, "status": "completed",
                          "validation_accuracy": values[seed], "final_accuracy": values[seed] - 0.05, "lr": lr,
                          "probe": "p", "arm": "m"}
                         for lr, values in validation.items() for seed in range(3)])


def test_every_report_chooses_the_lr_by_the_mean_over_seeds_not_per_seed():
    from seqbench.analysis.findings.verdicts import at_chosen_lr

    runs = disagreeing_table()
    warnings.simplefilter("ignore")  # 1e-3 is the grid's lower edge: flagged, which is not what this test is about
    assert set(choose_lr(runs, metric="final_accuracy", groups=["model.name"])["chosen_lr"]) == {1e-3}
    assert set(best_over_lr(runs, metric="final_accuracy")["chosen_lr"]) == {1e-3}  # the sweep report
    table, _, _, _ = final_table(runs)  # the sweep plots and exported best_over_lr.csv
    assert set(table["chosen_lr"]) == {1e-3} and len(table) == 3
    assert set(at_chosen_lr(runs, "final_accuracy")["lr"]) == {1e-3}  # the findings' verdicts, plots and lr lines
