"""Each decision rule on small synthetic results tables: the verdict follows from the numbers."""
import math

import numpy as np
import pandas as pd
import pytest

from seqbench.analysis.findings.verdicts import Better, Crossover, Monotone, Ratio, Similar, at_chosen_lr, crossover_step

EMPTY = pd.DataFrame()


def table(values: dict[str, list[float]], metric: str = "final_bpc", lr: float = 1e-3) -> pd.DataFrame:
    """One row per (arm, seed) with `metric` and its validation twin."""
    rows = [{"probe": "p", "arm": arm, "seed": seed, "lr": lr, "run_id": f"{arm}-{seed}-{lr}", metric: value,
             "validation_" + metric.removeprefix("final_"): value}
            for arm, per_seed in values.items() for seed, value in enumerate(per_seed)]
    return pd.DataFrame(rows)


def test_better_is_reproduced_contradicted_or_inconclusive_by_the_paired_interval():
    rule = Better("a", "b", metric="final_bpc")  # lower BPC is better
    reproduced = rule.evaluate(table({"a": [1.50, 1.61, 1.40], "b": [1.60, 1.70, 1.52]}), EMPTY, EMPTY, "cpu")
    assert reproduced.verdict == "reproduced" and reproduced.effect == pytest.approx(0.1033, abs=1e-4) and reproduced.low > 0
    contradicted = rule.evaluate(table({"a": [1.60, 1.70, 1.52], "b": [1.50, 1.61, 1.40]}), EMPTY, EMPTY, "cpu")
    assert contradicted.verdict == "contradicted" and contradicted.high < 0
    noisy = rule.evaluate(table({"a": [1.50, 1.70, 1.40], "b": [1.60, 1.60, 1.45]}), EMPTY, EMPTY, "cpu")
    assert noisy.verdict == "inconclusive" and noisy.low < 0 < noisy.high


def test_better_on_accuracy_is_oriented_higher():
    rule = Better("a", "b", metric="final_accuracy")
    outcome = rule.evaluate(table({"a": [0.9, 0.95, 0.92], "b": [0.5, 0.55, 0.6]}, "final_accuracy"), EMPTY, EMPTY, "cpu")
    assert outcome.verdict == "reproduced" and outcome.effect == pytest.approx(0.3733, abs=1e-4)


def test_fewer_than_three_paired_seeds_is_inconclusive_however_large_the_effect():
    outcome = Better("a", "b", metric="final_bpc").evaluate(table({"a": [1.0, 1.0], "b": [2.0, 2.1]}), EMPTY, EMPTY, "cpu")
    assert outcome.verdict == "inconclusive" and outcome.seeds == 2 and "3 needed" in outcome.detail


def test_similar_needs_the_whole_interval_inside_the_margin():
    rule = Similar("a", "b", metric="final_bpc", margin=0.02)
    inside = rule.evaluate(table({"a": [1.500, 1.601, 1.402], "b": [1.501, 1.600, 1.400]}), EMPTY, EMPTY, "cpu")
    assert inside.verdict == "reproduced"
    outside = rule.evaluate(table({"a": [1.50, 1.60, 1.40], "b": [1.60, 1.71, 1.49]}), EMPTY, EMPTY, "cpu")
    assert outside.verdict == "contradicted" and outside.low > 0.02
    straddling = rule.evaluate(table({"a": [1.50, 1.60, 1.40], "b": [1.52, 1.58, 1.45]}), EMPTY, EMPTY, "cpu")
    assert straddling.verdict == "inconclusive"


def test_similar_at_a_step_reads_the_validation_curve_there():
    runs = table({"a": [1.5, 1.6, 1.4], "b": [1.5, 1.6, 1.4]}, "final_bpc")
    curves = pd.DataFrame([{"run_id": run_id, "step": 300, "split": "validation", "bpc": 2.0 + 0.3 * run_id.startswith("b")}
                           for run_id in runs["run_id"]])
    outcome = Similar("a", "b", metric="validation_bpc", margin=0.02, at_step={"cpu": 300}).evaluate(runs, curves, EMPTY, "cpu")
    assert outcome.verdict == "contradicted" and outcome.effect == pytest.approx(0.3)  # final values are equal; step 300 is not


def curve_table(late: list[float], early: list[float], steps=(100, 200, 300, 400), noise=(0.0, 0.01, -0.01)):
    runs, curves = [], []
    for arm, means in (("late", late), ("early", early)):
        for seed, shift in enumerate(noise):
            run_id = f"{arm}-{seed}"
            runs.append({"probe": "p", "arm": arm, "seed": seed, "lr": 1e-3, "run_id": run_id, "validation_bpc": means[-1] + shift})
            curves += [{"run_id": run_id, "step": step, "split": "validation", "bpc": value + shift}
                       for step, value in zip(steps, means)]
    return pd.DataFrame(runs), pd.DataFrame(curves)


def test_crossover_finds_the_step_from_which_the_late_arm_stays_ahead():
    runs, curves = curve_table(late=[3.0, 2.5, 2.0, 1.8], early=[2.8, 2.4, 2.1, 2.0])
    outcome = Crossover("late", "early", metric="validation_bpc").evaluate(runs, curves, EMPTY, "cpu")
    assert outcome.verdict == "reproduced" and outcome.per_arm["crossover_step"] == 300
    assert outcome.effect == pytest.approx(0.2)


def test_crossover_contradicted_when_the_early_arm_still_leads_or_the_late_arm_always_led():
    runs, curves = curve_table(late=[3.0, 2.5, 2.2, 2.1], early=[2.8, 2.4, 2.1, 2.0])
    assert Crossover("late", "early", metric="validation_bpc").evaluate(runs, curves, EMPTY, "cpu").verdict == "contradicted"
    runs, curves = curve_table(late=[2.5, 2.2, 2.0, 1.8], early=[2.8, 2.4, 2.1, 2.0])
    always = Crossover("late", "early", metric="validation_bpc").evaluate(runs, curves, EMPTY, "cpu")
    assert always.verdict == "contradicted" and "every evaluation" in always.detail


def test_crossover_step_helper():
    assert crossover_step(pd.Series([-1.0, 0.5, -0.1, 0.2, 0.3], index=[1, 2, 3, 4, 5])) == 4
    assert crossover_step(pd.Series([-1.0, 0.5, -0.1], index=[1, 2, 3])) is None
    assert crossover_step(pd.Series([0.1, 0.2], index=[1, 2])) is None


LEVELS = ("d1", "d4", "d16")


def test_monotone_reproduced_when_every_step_improves_and_the_ends_differ():
    runs = table({"d1": [2.0, 2.1, 1.9], "d4": [1.9, 2.0, 1.8], "d16": [1.7, 1.8, 1.6]})
    outcome = Monotone(LEVELS, metric="final_bpc").evaluate(runs, EMPTY, EMPTY, "cpu")
    assert outcome.verdict == "reproduced" and outcome.effect == pytest.approx(0.3) and "best level: d16" in outcome.detail


def test_monotone_contradicted_by_a_significant_reversal_and_inconclusive_when_flat_in_the_middle():
    reversal = table({"d1": [2.0, 2.1, 1.9], "d4": [1.7, 1.8, 1.6], "d16": [1.8, 1.9, 1.71]})
    outcome = Monotone(LEVELS, metric="final_bpc").evaluate(reversal, EMPTY, EMPTY, "cpu")
    assert outcome.verdict == "contradicted" and "d4 → d16" in outcome.detail
    flat = table({"d1": [2.0, 2.1, 1.9], "d4": [1.7, 1.9, 1.6], "d16": [1.71, 1.8, 1.7]})
    assert Monotone(LEVELS, metric="final_bpc").evaluate(flat, EMPTY, EMPTY, "cpu").verdict == "inconclusive"


def test_inconclusive_when_no_run_has_finished():
    for rule in (Better("a", "b", metric="final_bpc"), Similar("a", "b", metric="final_bpc", margin=0.1),
                 Monotone(LEVELS, metric="final_bpc"), Crossover("a", "b", metric="validation_bpc")):
        outcome = rule.evaluate(pd.DataFrame(columns=["probe", "arm", "seed", "lr", "run_id"]),
                                pd.DataFrame(columns=["run_id", "step", "split"]), EMPTY, "cpu")
        assert outcome.verdict == "inconclusive"


def speed_rows(a_value, b_value, a_status="ok"):
    return pd.DataFrame([{"arm": "a", "length": 128, "measure": "forward_backward", "status": a_status, "median_ms": a_value},
                         {"arm": "b", "length": 128, "measure": "forward_backward", "status": "ok", "median_ms": b_value}])


def test_ratio_against_its_threshold_and_an_over_budget_case_as_infinite():
    at_least = Ratio("a", "b", quantity="median_ms", length=128, at_least=10.0)
    assert at_least.evaluate(EMPTY, EMPTY, speed_rows(200.0, 10.0), "cpu").verdict == "reproduced"
    assert at_least.evaluate(EMPTY, EMPTY, speed_rows(50.0, 10.0), "cpu").verdict == "contradicted"
    capped = at_least.evaluate(EMPTY, EMPTY, speed_rows(math.nan, 10.0, "capped_memory"), "cpu")
    assert capped.verdict == "reproduced" and math.isinf(capped.effect)
    at_most = Ratio("a", "b", quantity="median_ms", length=128, at_most=2.0)
    assert at_most.evaluate(EMPTY, EMPTY, speed_rows(15.0, 10.0), "cpu").verdict == "reproduced"
    assert at_most.evaluate(EMPTY, EMPTY, EMPTY, "cpu").verdict == "inconclusive"
    with pytest.raises(ValueError, match="exactly one"):
        Ratio("a", "b", quantity="median_ms", length=128)


def test_best_lr_is_chosen_per_arm_on_the_mean_validation_metric():
    low, high = table({"a": [1.5, 1.6, 1.4]}, lr=1e-3), table({"a": [1.4, 1.7, 1.35]}, lr=1e-2)  # means 1.5 vs 1.483
    chosen = at_chosen_lr(pd.concat([low, high]), "final_bpc")
    assert set(chosen["lr"]) == {1e-2} and len(chosen) == 3
    assert np.allclose(sorted(chosen["final_bpc"]), [1.35, 1.4, 1.7])
