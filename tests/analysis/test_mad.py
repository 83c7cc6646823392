"""The MAD score (analysis/mad.py) from a small table: hyperparameters chosen on validation per
setting, test averaged over settings, then over tasks."""
import pandas as pd
import pytest

from seqbench.analysis.mad import calibration, chosen_settings, mad_scores


def test_mad_score_is_the_mean_over_settings_of_test_at_the_validated_hyperparameters():
    rows = []
    for task, settings in (("mad_in_context_recall", (128, 256)), ("mad_selective_copying", (256,))):
        for seq_len in settings:
            for lr, wd, validation, test in ((1e-4, 0.0, 0.5, 0.55), (1e-3, 0.0, 0.9, 0.80), (1e-3, 0.1, 0.7, 0.99)):
                rows.append({"model.name": "m", "task.name": task, "task.options.seq_len": seq_len, "optimizer.lr": lr,
                             "optimizer.weight_decay": wd, "seed": 0, "status": "completed",
                             "validation_macro_accuracy": validation - seq_len / 1e4, "final_macro_accuracy": test - seq_len / 1e4})
    table = mad_scores(pd.DataFrame(rows)).set_index("model")
    # (1e-3, 0.0) wins on validation everywhere (its test, 0.80, is not the best test: 0.99 is never chosen)
    assert table.loc["m", "in_context_recall"] == pytest.approx(((0.80 - 0.0128) + (0.80 - 0.0256)) / 2)
    assert table.loc["m", "selective_copying"] == pytest.approx(0.80 - 0.0256)
    assert table.loc["m", "MAD score"] == pytest.approx((table.loc["m", "in_context_recall"] + table.loc["m", "selective_copying"]) / 2)


def test_scores_are_read_against_the_published_range_unless_missing_or_at_chance():
    """The range spans every source's value for that (model, task): attention's noisy recall is
    0.868 in the DeltaNet paper and 0.897 in lin-attn-bench."""
    scores = pd.DataFrame({"model": ["softmax_attention", "mamba"], "in_context_recall": [0.93, 0.04],
                           "noisy_in_context_recall": [0.80, 0.95], "selective_copying": [float("nan"), 0.2],
                           "fuzzy_in_context_recall": [0.3, 0.62]})
    chance = {"in_context_recall": 1 / 16, "noisy_in_context_recall": 1 / 32, "selective_copying": 1 / 16,
              "fuzzy_in_context_recall": 1 / 16, "compression": 1 / 16, "memorization": 1 / 256}
    table = calibration(scores, chance).set_index(["model", "task"])
    assert table.loc[("softmax_attention", "noisy_in_context_recall"), "published"] == "0.868–0.897 (2)"
    assert table.loc[("softmax_attention", "in_context_recall"), "against published"] == "within"  # 0.905–0.941
    assert table.loc[("softmax_attention", "noisy_in_context_recall"), "against published"] == "below"
    assert table.loc[("softmax_attention", "selective_copying"), "against published"] == "not run"
    assert table.loc[("mamba", "in_context_recall"), "against published"] == "at chance"  # 0.04 ≤ 1/16 + 0.05
    assert table.loc[("mamba", "fuzzy_in_context_recall"), "against published"] == "above"  # 0.067–0.123
    assert table.loc[("gla", "compression"), "published"] == "0.408–0.408 (1)"
    assert set(calibration(scores.iloc[:0], chance)["against published"]) == {"not run"}


def test_each_chosen_lr_at_an_edge_of_its_grid_is_flagged_jointly_chosen_weight_decay_or_not():
    rows = [{"model.name": model, "task.name": "mad_in_context_recall", "optimizer.lr": lr, "optimizer.weight_decay": wd,
             "seed": 0, "status": "completed", "validation_macro_accuracy": value(lr, wd), "final_macro_accuracy": 0.5}
            for model, value in (("edge", lambda lr, wd: lr + wd), ("inside", lambda lr, wd: -abs(lr - 3e-3) + wd))
            for lr in (1e-3, 3e-3, 1e-2) for wd in (0.0, 0.1)]
    choices = chosen_settings(pd.DataFrame(rows)).set_index("model")
    assert choices.loc["edge", "lr"] == 1e-2 and bool(choices.loc["edge", "lr at edge"])
    assert choices.loc["inside", "lr"] == 3e-3 and not choices.loc["inside", "lr at edge"]
    assert (choices["weight decay"] == 0.1).all()


def test_a_task_with_unfinished_runs_or_no_runs_has_no_score_and_no_mad_score():
    """Never the best of whatever finished: one run still pending blanks that (model, task) and the MAD score."""
    rows = [{"model.name": model, "task.name": "mad_in_context_recall", "optimizer.lr": lr, "seed": 0,
             "status": "pending" if (model, lr) == ("b", 1e-2) else "completed",
             "validation_macro_accuracy": 0.5 + lr, "final_macro_accuracy": 0.4 + lr}
            for model in ("a", "b") for lr in (3e-3, 1e-2)]
    rows[-1]["validation_macro_accuracy"] = rows[-1]["final_macro_accuracy"] = None
    rows += [{"model.name": model, "task.name": "mad_memorization", "optimizer.lr": 1e-2, "optimizer.weight_decay": 0.0,
              "seed": 0, "status": "pending", "validation_macro_accuracy": None, "final_macro_accuracy": None} for model in "ab"]
    table = mad_scores(pd.DataFrame(rows), tasks=["in_context_recall", "memorization"]).set_index("model")
    assert table.loc["a", "in_context_recall"] == pytest.approx(0.41)
    assert pd.isna(table.loc["b", "in_context_recall"])
    assert table["memorization"].isna().all() and table["MAD score"].isna().all()
    assert list(mad_scores(pd.DataFrame(rows[:4]), tasks=["in_context_recall"]).set_index("model")["MAD score"].round(2).fillna(-1)) == [0.41, -1]
