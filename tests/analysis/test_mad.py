"""The MAD score (analysis/mad.py) from a small table: hyperparameters chosen on validation per
setting, test averaged over settings, then over tasks."""
import pandas as pd
import pytest

from seqbench.analysis.mad import mad_scores, published_agreement


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


def test_published_ranges_are_judged_on_the_measured_score_and_missing_ones_are_not_run():
    scores = pd.DataFrame({"model": ["softmax_attention", "mamba"], "in_context_recall": [0.93, 0.4],
                           "noisy_in_context_recall": [0.85, 0.3], "selective_copying": [float("nan"), 0.2],
                           "fuzzy_in_context_recall": [0.3, 0.62]})
    verdicts = published_agreement(scores).set_index(["model", "task"])["reduced protocol"]
    assert verdicts[("softmax_attention", "in_context_recall")] == "agrees"
    assert verdicts[("softmax_attention", "noisy_in_context_recall")] == "disagrees"
    assert verdicts[("softmax_attention", "selective_copying")] == "not run"
    assert verdicts[("mamba", "fuzzy_in_context_recall")] == "disagrees"
    assert set(published_agreement(scores.iloc[:0])["reduced protocol"]) == {"not run"}


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
