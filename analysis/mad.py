"""The MAD score (Poli et al. 2024): per model and task, the mean over the task's settings (its
baseline and every difficulty change) of the test accuracy at the best hyperparameters; the MAD
score is the mean over the six tasks. mad-lab picks the best run on test accuracy itself; here the
lr and weight decay are chosen on validation (analysis/protocol.py) and test is reported at them,
so a score is never tuned on the numbers it reports. The accuracy is mad-lab's macro accuracy."""
from __future__ import annotations

import pandas as pd

from seqbench.analysis.protocol import at_chance, choose_lr

METRIC = "final_macro_accuracy"
WEIGHT_DECAY = "optimizer.weight_decay"
TASK_ORDER = ("compression", "fuzzy_in_context_recall", "in_context_recall", "memorization", "noisy_in_context_recall",
              "selective_copying")
# Published MAD results at MAD's own protocol (test accuracy, %), one row per source and model, the six
# tasks in TASK_ORDER; a source's "Transformer" is softmax attention here (docs/sources.md, "MAD").
DELTANET_PAPER = "Yang et al. 2024, DeltaNet (arXiv 2406.06484), MAD table"
LIN_ATTN_BENCH = "HassanJbara/lin-attn-bench README.md, MAD table"
PUBLISHED = (
    (DELTANET_PAPER, "softmax_attention", (51.6, 29.8, 94.1, 85.2, 86.8, 99.6)),
    (DELTANET_PAPER, "mamba", (52.7, 6.7, 90.4, 89.5, 90.1, 86.3)),
    (LIN_ATTN_BENCH, "softmax_attention", (43.2, 56.5, 90.5, 78.8, 89.7, 99.8)),
    (LIN_ATTN_BENCH, "mamba", (49.1, 12.3, 99.3, 89.6, 99.7, 88.7)),
    (LIN_ATTN_BENCH, "rwkv7", (46.2, 18.0, 99.9, 88.6, 99.9, 94.9)),
    (LIN_ATTN_BENCH, "gated_deltanet", (43.5, 28.6, 99.9, 55.2, 99.9, 99.7)),
    (LIN_ATTN_BENCH, "gla", (40.8, 15.5, 91.8, 77.1, 93.1, 89.1)),
)


def setting_columns(runs: pd.DataFrame) -> list[str]:
    """The task options that vary: a run's difficulty setting."""
    return [c for c in runs.columns if c.startswith("task.options.") and runs[c].astype(str).nunique() > 1]


def mad_scores(runs: pd.DataFrame, tasks: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """model × task table of scores, with a `MAD score` column (the mean over tasks).

    A score needs every run of its grid (protocol.choose_lr chooses for complete grids alone): a
    (model, task) with a run not finished yet (pending, running, preempted, failed) is NaN, never the
    best of the runs that happen to be done, and so is a task of `tasks` that has no runs at all; the
    MAD score of a model with any NaN task is NaN."""
    scores = []
    for task, of_task in (runs.groupby("task.name") if len(runs) else ()):
        settings = setting_columns(of_task)
        chosen = choose_lr(of_task, metric=METRIC, groups=["model.name", *settings], also=(WEIGHT_DECAY,)
                           if WEIGHT_DECAY in of_task.columns else ())
        keys = ["model.name", *settings]
        chosen = chosen if METRIC in chosen.columns else chosen.assign(**{METRIC: float("nan")})
        per_setting = chosen.groupby(keys, dropna=False)[METRIC].mean().reset_index()
        for model, wanted in of_task[keys].drop_duplicates().groupby("model.name"):
            got = per_setting[per_setting["model.name"] == model]
            scores.append({"model": model, "task": task.removeprefix("mad_"),
                           "score": float(got[METRIC].mean()) if len(got) == len(wanted) else float("nan")})
    if not scores:
        return pd.DataFrame(columns=["model", *tasks, "MAD score"])
    table = pd.DataFrame(scores).pivot(index="model", columns="task", values="score")
    for task in tasks:
        if task not in table.columns:
            table[task] = float("nan")
    table = table[sorted(table.columns)]
    table["MAD score"] = table.mean(axis=1, skipna=False)
    return table.reset_index().rename_axis(columns=None)


def chosen_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model, task and difficulty setting: the chosen lr and weight decay, and whether the lr sits
    at an edge of the grid tried (the report flags it: the optimum may lie beyond)."""
    rows = []
    for task, of_task in (runs.groupby("task.name") if len(runs) else ()):
        settings = setting_columns(of_task)
        chosen = choose_lr(of_task, metric=METRIC, groups=["model.name", *settings], also=(WEIGHT_DECAY,)
                           if WEIGHT_DECAY in of_task.columns else ())
        if "chosen_lr" not in chosen.columns:
            continue
        for _, row in chosen.drop_duplicates(["model.name", *settings]).iterrows():
            rows.append({"model": row["model.name"], "task": task.removeprefix("mad_"), "lr": row["chosen_lr"],
                         "weight decay": row.get(WEIGHT_DECAY, float("nan")), "lr at edge": bool(row["lr_at_edge"])})
    return pd.DataFrame(rows, columns=["model", "task", "lr", "weight decay", "lr at edge"])


def calibration(scores: pd.DataFrame, chance: dict[str, float]) -> pd.DataFrame:
    """Per task and model with a published value: the published min–max across sources (how many),
    the measured score (a `mad_scores` table), and whether the measurement is at chance (`chance`:
    task → chance level) — a score at chance, or missing, is never read against the literature."""
    table = scores.set_index("model") if "model" in scores.columns else scores
    published: dict[tuple[str, str], list[float]] = {}
    for _, model, values in PUBLISHED:
        for task, value in zip(TASK_ORDER, values):
            published.setdefault((model, task), []).append(value / 100)
    rows = []
    for (model, task), values in sorted(published.items(), key=lambda item: (TASK_ORDER.index(item[0][1]), item[0][0])):
        measured = table.at[model, task] if model in table.index and task in table.columns else float("nan")
        state = ("not run" if pd.isna(measured) else "at chance" if at_chance(measured, chance.get(task))
                 else "within" if min(values) <= measured <= max(values) else "below" if measured < min(values) else "above")
        rows.append({"task": task, "model": model, "published": f"{min(values):.3f}–{max(values):.3f} ({len(values)})",
                     "measured": measured, "against published": state})
    return pd.DataFrame(rows)
