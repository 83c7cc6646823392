"""`seqbench findings list` and `report`: what each finding claims and how it is decided; the verdicts.

The report reads the scale's store folder once (analysis/collect.py), labels each run with its
finding, probe, arm, lr and seed, applies every rule (analysis/findings/verdicts.py) and writes, under
`out`: README.md (the verdict table, then per finding the effects, intervals, parameter spread,
compute and the commits the runs came from) and per finding `runs.csv` and `plot.png`.
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pandas as pd

from seqbench.analysis.collect import collect_all
from seqbench.analysis.findings.finding import Finding
from seqbench.analysis.findings.planning import PILOT_SEEDS, plan_seeds
from seqbench.analysis.findings.plots import plot_finding
from seqbench.analysis.findings.scales import SCALE_LIMITS, STORE_FOLDER
from seqbench.analysis.findings.verdicts import Outcome, Similar, at_chosen_lr
from seqbench.analysis.protocol import validation_metric
from seqbench.bench.store import FINISHED, Store
from seqbench.core import atomic_write_bytes, atomic_write_csv

RUN_COLUMNS = ("status", "task.data.file", "task.data.sha256", "task.data.bytes",
               "parameters", "steps", "wall_time_s", "final_bpc", "validation_bpc", "final_accuracy",
               "validation_accuracy", "model.d_model", "model.mlp_hidden", "provenance.commit", "provenance.dirty")


def format_listing(findings: list[Finding]) -> str:
    lines = []
    for finding in findings:
        lines.append(f"{finding.id:<7} {finding.claim}")
        lines.append(f"        source: {finding.source}")
        for probe in finding.probes:
            how = ("measured" if probe.is_speed else f"each arm at the lr {probe.lr_from} chose" if probe.lr_from
                   else "best lr on validation" if probe.select_lr else "one lr")
            lines.append(f"        runs:   {probe.name}: {', '.join(arm.label for arm in probe.arms)} ({how})")
        for number, rule in enumerate(finding.rules):
            on = f"  [{rule.probe}]" if rule.probe and len(finding.probes) > 1 else ""
            lines.append(f"        {'decides' if number == 0 else 'also':<7} {rule.describe()}{on}")
    return "\n".join(lines)


def folder_name(finding_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", finding_id)


def recorded_seed_plans(finding: Finding, scale: str, corpus: str | None, root) -> dict[int, dict]:
    """Rule index → the seed plan recorded for each equivalence (Similar) rule (reading never plans)."""
    return {index: json.loads(path.read_text()) for index, rule in enumerate(finding.rules) if isinstance(rule, Similar)
            and (path := plan_path(finding, index, scale, corpus, root)).exists()}


def pilot_seed_plans(finding: Finding, scale: str, corpus: str | None, runs: pd.DataFrame, curves: pd.DataFrame, root,
                     replication_of: str | None = None) -> dict[int, dict]:
    """Rule index → a seed plan for each equivalence rule that has none recorded and whose pilot seeds
    of both arms have all finished, computed by analysis/findings/planning.py — for the campaign to
    record, once (seqbench/campaign.py); never recomputed, whatever later seeds show."""
    recorded, plans = recorded_seed_plans(finding, scale, corpus, root), {}
    for index, rule in enumerate(finding.rules):
        if not isinstance(rule, Similar) or index in recorded or runs.empty:
            continue
        table, wide, _ = finding_tables(finding, scale, runs, curves, pd.DataFrame(), corpus, {}, replication_of)
        probe = rule.probe or finding.probes[0].name
        pilot = table[(table["probe"] == probe) & table["arm"].isin([rule.a, rule.b])]
        if pilot.empty or not pilot["status"].isin(FINISHED).all():
            continue  # the pilot is not complete: nothing is planned from part of it
        differences = rule.differences(pilot, wide, scale)
        if len(differences) < PILOT_SEEDS:
            continue
        plan = plan_seeds(differences.tolist(), rule.margin).as_record()
        chosen = at_chosen_lr(pilot, rule.metric).groupby("arm")["lr"].first()
        plans[index] = {**plan, "rule": rule.describe(), "lrs": {arm: float(lr) for arm, lr in chosen.items()},
                        "pilot_differences": differences.tolist(), "written": time.time()}
    return plans


def plan_path(finding: Finding, index: int, scale: str, corpus: str | None, root) -> Path:
    """Where a rule's seed plan is recorded: in the store, beside the runs it plans (one per corpus)."""
    from seqbench.tasks.enwik8 import file_identity, find_corpus

    tag = "default"
    if corpus is not None:
        found = find_corpus(str(corpus), None)
        tag = file_identity(str(found.resolve()), found.stat().st_size, found.stat().st_mtime_ns)["sha256"][:12]
    return Store(root).sweep(STORE_FOLDER[scale]).path / "plans" / f"{folder_name(finding.id)}-rule{index}-{tag}.json"


def finding_tables(finding: Finding, scale: str, runs: pd.DataFrame, curves: pd.DataFrame, rows: pd.DataFrame,
                   corpus: str | None = None, plans: dict | None = None, replication_of: str | None = None):
    """(runs, curves, measurement rows) of one finding on `corpus`, each run labelled probe / arm / lr / seed
    (a run whose lr is not decided yet is a pending row without a run id)."""
    _, labels = finding.sweep(scale, corpus, runs if len(runs) else None, plans, replication_of)
    labelled = pd.DataFrame([{key: row[key] for key in ("probe", "arm", "lr", "seed", "run_id")} for row in labels])
    present = runs.set_index("run_id")
    columns = [c for c in present.columns if c in RUN_COLUMNS or c.startswith(("final_accuracy/", "validation_accuracy/"))]
    table = labelled.join(present[columns], on="run_id") if len(present) else labelled.assign(status="pending")
    table["status"] = table["status"].fillna("pending")
    if "optimizer.lr" in present.columns:
        table["lr"] = table["lr"].fillna(table["run_id"].map(present["optimizer.lr"]))
    wide = pd.DataFrame(columns=["run_id", "step", "split"])
    if len(curves):
        wide = curves[curves["run_id"].isin(table["run_id"])].pivot_table(
            index=["run_id", "step", "split"], columns="metric", values="value", aggfunc="last").reset_index()
    measured = pd.DataFrame()
    if len(rows):
        measured = rows.merge(table[["run_id", "probe", "arm"]], on="run_id")
    return table, wide, measured


def evaluate(finding: Finding, scale: str, table: pd.DataFrame, curves: pd.DataFrame, rows: pd.DataFrame) -> list[Outcome]:
    """Each rule on its probe's runs, unfinished ones included: an arm's lr is chosen (protocol.choose_lr)
    only once its whole grid has finished."""
    outcomes = []
    for rule in finding.rules:
        probe = rule.probe or finding.probes[0].name
        measured = rows[rows["probe"] == probe] if len(rows) else rows
        outcomes.append(rule.evaluate(table[table["probe"] == probe], curves, measured, scale))
    return outcomes


def parameter_spread(table: pd.DataFrame) -> float | None:
    """Largest relative distance of a probe's parameter count from that probe's median (training runs)."""
    if "parameters" not in table.columns or table["parameters"].isna().all():
        return None
    spread = table.dropna(subset=["parameters"]).groupby("probe")["parameters"].agg(lambda p: (p / p.median() - 1).abs().max())
    return float(spread.max())


def _lr_lines(finding: Finding, table: pd.DataFrame, scale: str, corpus: str | None, runs: pd.DataFrame,
              replication_of: str | None = None) -> list[str]:
    """Per probe that selects the lr: each arm's grid (with every extension the rule made and why)
    and its chosen lr, flagged where it is still at an edge the rule may not extend further; on a
    replication corpus, and for a probe that takes another's lrs, where each arm's lr came from."""
    lines = []
    for probe in finding.probes:
        if probe.lr_from is not None or (probe.select_lr and replication_of is not None):
            lrs = table[table["probe"] == probe.name].groupby("arm")["lr"].first()
            where = " ".join([*([f"in {probe.lr_from}"] if probe.lr_from else []),
                              *([f"on {Path(replication_of).name}"] if replication_of else [])])
            lines += [f"{probe.name}: each arm at the lr chosen {where} — " + " · ".join(
                f"{arm.label}: {'not decided yet' if pd.isna(lrs.get(arm.label)) else f'{lrs[arm.label]:g}'}"
                for arm in probe.arms) + ".", ""]
            continue
        of_probe = table[table["probe"] == probe.name]
        metric = finding.metric_of(probe)
        if not probe.select_lr or not of_probe["status"].isin(FINISHED).any() or metric is None \
                or validation_metric(metric) not in of_probe.columns:
            continue
        chosen = at_chosen_lr(of_probe, metric).groupby("arm")["lr"].first()
        parts = []
        for arm in probe.arms:
            plan = finding.grid_plan(probe, arm, scale, corpus, runs)
            lr = chosen.get(arm.label)
            grid = ", ".join(f"{value:g}" for value in plan.grid)
            extended = f"; extended: {'; '.join(plan.extensions)}" if plan.extensions else ""
            flag = " (still at the grid's edge after two extensions)" if plan.at_edge else ""
            parts.append(f"{arm.label}: {'–' if lr is None else f'{lr:g}'} of {grid}{flag}{extended}")
        lines += [f"Learning rate chosen on mean validation {validation_metric(metric).removeprefix('validation_')} over "
                  f"seeds — " + " · ".join(parts) + ".", ""]
    return lines


def _plan_lines(finding: Finding, plans: dict[int, dict]) -> list[str]:
    lines = []
    for index, rule in enumerate(finding.rules):
        if isinstance(rule, Similar):
            plan = plans.get(index)
            lines += [f"Seed plan for “{rule.describe()}”: " + (f"{plan['seeds']} seeds — {plan['reason']} (recorded from the "
                      f"pilot's differences {', '.join(f'{d:+.4f}' for d in plan['pilot_differences'])})." if plan else
                      "not yet made (its pilot seeds have not all finished)."), ""]
    return lines


# --- the report ----------------------------------------------------------------------------------
def _number(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}g}"


def _effect(outcome: Outcome) -> str:
    if not math.isfinite(outcome.effect):
        return "–"
    if math.isfinite(outcome.low):
        return f"{outcome.effect:+.4f} [{outcome.low:+.4f}, {outcome.high:+.4f}]"
    return f"{outcome.effect:.3g}×" if "ratio" in outcome.rule else f"{outcome.effect:+.4f}"


def verdict_text(table: pd.DataFrame, outcome: Outcome) -> str:
    """The verdict, or "not run (k of n)" while any run it rests on is missing: never a verdict from part of the data."""
    finished = int(table["status"].isin(FINISHED).sum())
    return outcome.verdict if finished == len(table) else f"not run ({finished} of {len(table)})"


def corpus_label(table: pd.DataFrame, asked: str | None) -> str:
    """The corpus as its runs recorded it (name, size, sha256), or what was asked for if none ran."""
    recorded = table.dropna(subset=["task.data.sha256"]) if "task.data.sha256" in table.columns else table.iloc[:0]
    if len(recorded):
        first = recorded.iloc[0]
        return f"{first['task.data.file']} ({int(first['task.data.bytes']):,} bytes, sha256 {first['task.data.sha256'][:12]}…)"
    return f"{asked or 'the default corpus'} (no run recorded it)"


def write_report(findings: list[Finding], scale: str, *, root=None, out="results/findings",
                 corpora: list[str | None] = (None,)) -> list[Path]:
    """The verdict table (a column per corpus, marked robust where all corpora agree on a decided
    verdict), then per finding and corpus the effects, intervals, parameter spread, compute and the
    commits the runs came from; per finding `runs.csv` and `plot.png` (in a folder per corpus when
    there are several)."""
    from seqbench.analysis.findings.finding import missing_corpus

    out, corpora = Path(out), list(corpora)
    runs, curves, rows = collect_all(STORE_FOLDER[scale], root) if Store(root).sweep(STORE_FOLDER[scale]).exists() else \
        (pd.DataFrame(columns=["run_id"]), pd.DataFrame(), pd.DataFrame())
    summary, sections, written, labels = [], [], [], {}
    for finding in findings:
        cells = []
        models_corpus = any(probe.base is None for probe in finding.probes)
        for number, corpus in enumerate(corpora if models_corpus else corpora[:1]):  # a synthetic or measured finding: one column
            tag = "" if len(corpora) == 1 or not models_corpus else folder_name(Path(corpus or "default").name)
            missing = missing_corpus(scale, corpus) if models_corpus else None
            if missing:  # the corpus is not here: its runs' ids cannot even be computed
                cells.append((f"not run (corpus {Path(str(corpus or 'gcide.dict.dz')).name} not found here)", "–", "–"))
                continue
            replication_of = corpora[0] if number > 0 else None  # the first corpus tunes, the others replicate at its lrs
            plans = recorded_seed_plans(finding, scale, corpus, root)
            table, wide, measured = finding_tables(finding, scale, runs, curves, rows, corpus, plans, replication_of)
            outcomes = evaluate(finding, scale, table, wide, measured)
            if corpus not in labels and "task.data.sha256" in table.columns and table["task.data.sha256"].notna().any():
                labels[corpus] = corpus_label(table, corpus)
            folder = out / scale / folder_name(finding.id) / tag
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_csv(folder / "runs.csv", table)
            if len(measured):
                atomic_write_csv(folder / "measurements.csv", measured)
            first, verdict = outcomes[0], verdict_text(table, outcomes[0])
            written += [folder / "runs.csv", plot_finding(finding, verdict, table, wide, measured, folder / "plot.png", scale)]
            decided = not verdict.startswith("not run")
            cells.append((verdict, _effect(first) if decided else "–", str(first.seeds or "–") if decided else "–"))
            lr_lines = _lr_lines(finding, table, scale, corpus, runs if len(runs) else None, replication_of) \
                + _plan_lines(finding, plans)
            label = corpus_label(table, corpus) if models_corpus else "none (no language-model probe: the same runs for every corpus)"
            sections.append(_section(finding, scale, table, outcomes, label, folder.relative_to(out), lr_lines))
        verdicts = {cell[0] for cell in cells}
        robust = models_corpus and len(corpora) > 1 and len(verdicts) == 1 and verdicts <= {"reproduced", "contradicted"}
        cells += [("n/a (no corpus)", "–", "–")] * (len(corpora) - len(cells))
        summary.append(f"| {finding.id} | {finding.claim} | " + " | ".join(f"**{v}** | {e} | {s}" for v, e, s in cells)
                       + (f" | {'robust' if robust else ''}" if len(corpora) > 1 else "") + " |")
    heading = " | ".join(f"{_short(labels.get(c), c)}: verdict | effect [95% interval] | seeds" for c in corpora)
    columns = 3 * len(corpora) + (1 if len(corpora) > 1 else 0)
    readme = out / "README.md"
    store = Store(root).sweep(STORE_FOLDER[scale])
    launched = store.commands() if store.exists() else []
    text = "\n".join([
        f"# Findings at {scale} scale: verdicts", "",
        f"Written by `seqbench findings report --scale {scale}"
        + "".join(f" --corpus {Path(c).name}" for c in corpora if c) + f"` from the store folder `{STORE_FOLDER[scale]}`"
        + (f", whose runs were launched by: {'; '.join(f'`{c}`' for c in launched)}. " if launched else ". ") +
        "Corpora of the language-modelling runs, as the runs recorded them: "
        + "; ".join(labels.get(c) or f"{c or 'the default'} (no run recorded it)" for c in corpora) + ". "
        "Decision rules were fixed in analysis/findings/records.py before any run (analysis/findings/verdicts.py says what each rule "
        "means); effects are oriented so that positive favours the claim's first arm (for BPC: its BPC is lower). "
        "A finding any of whose runs is missing says 'not run (k of n)', never a verdict"
        + ("; 'robust' marks a decided verdict every corpus agrees on." if len(corpora) > 1 else "."), "",
        f"| id | claim | {heading} |" + (" robust |" if len(corpora) > 1 else ""), "|---|---|" + "---|" * columns,
        *summary, "", f"What these verdicts do not show: {SCALE_LIMITS[scale]}", "", *sections])
    atomic_write_bytes(readme, text.encode())
    return [readme, *written]


def _short(label: str | None, asked: str | None) -> str:
    return (label or asked or "default corpus").split(" (")[0]


def _section(finding: Finding, scale: str, table: pd.DataFrame, outcomes: list[Outcome], corpus: str, folder: Path,
             lr_lines: list[str]) -> str:
    completed = int(table["status"].isin(FINISHED).sum())
    spread = parameter_spread(table)
    commits = sorted({str(c)[:10] for c in table.get("provenance.commit", pd.Series(dtype=str)).dropna()})
    dirty = bool(table.get("provenance.dirty", pd.Series(dtype=bool)).fillna(False).astype(bool).any())
    hours = table.get("wall_time_s", pd.Series(dtype=float)).fillna(0).sum() / 3600
    lines = [f"### {finding.id} — {finding.claim}", "", f"Source: {finding.source}. Scale: {scale}. Corpus: {corpus}. "
             f"Runs finished: {completed} of {len(table)}; training compute {hours:.2f} h (sum of run wall times); "
             f"parameter spread {_number(spread * 100 if spread is not None else None, 2)}%. "
             f"Commits: {', '.join(commits) or '–'}{' (a dirty tree among them)' if dirty else ''}.", ""]
    if finding.notes:
        lines += [finding.notes, ""]
    lines += lr_lines
    lines += ["| rule | verdict | effect [95% interval] | seeds | per arm | detail |", "|---|---|---|---|---|---|"]
    for outcome in outcomes:
        per_arm = "; ".join(f"{k}: {_number(v, 4) if isinstance(v, float) else v}" for k, v in outcome.per_arm.items())
        lines.append(f"| {outcome.rule} | **{verdict_text(table, outcome)}** | {_effect(outcome)} | {outcome.seeds or '–'} | "
                     f"{per_arm} | {outcome.detail} |")
    lines += ["", f"![{finding.id}]({folder.as_posix()}/plot.png)", ""]
    return "\n".join(lines)
