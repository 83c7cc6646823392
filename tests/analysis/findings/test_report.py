"""The findings report (analysis/findings/report.py) over stores that lack runs: missing data reads
as 'not run (k of n)', never as a verdict; and the command line takes its options anywhere."""
import re

import pytest

from seqbench.analysis import findings
from seqbench.cli import main


def summary_rows(readme: str) -> list[str]:
    return [line for line in readme.splitlines() if re.match(r"\| (U|P|S)\d", line)]


def plot_title(path) -> str:
    """The title a written plot states (style.atomic_save_figure stores it in the PNG)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.text.get("Title", "")


@pytest.mark.parametrize("store_folder", [False, True], ids=["empty root", "empty findings-cpu folder"])
def test_a_report_over_an_empty_store_says_not_run_for_every_finding(tmp_path, capsys, monkeypatch, store_folder):
    monkeypatch.setenv("SEQBENCH_DATA", str(tmp_path / "no-data-here"))  # the cpu corpus is absent too
    empty = tmp_path / "empty"
    (empty / "findings-cpu" if store_folder else empty).mkdir(parents=True)
    main(["findings", "report", "--root", str(empty), "--out", str(tmp_path / "report")])  # --root after the subcommand
    rows = summary_rows((tmp_path / "report" / "README.md").read_text())
    assert len(rows) == len(findings.FINDINGS)
    for row in rows:
        verdict = row.split("|")[3]
        assert "not run" in verdict and not re.search(r"reproduced|contradicted|inconclusive", verdict), row
    plots = sorted((tmp_path / "report").rglob("plot.png"))
    assert plots, "no plot written"
    for plot in plots:  # a plot's title is the report's verdict: none states one the table does not
        title = plot_title(plot)
        assert "not run" in title and not re.search(r"reproduced|contradicted|inconclusive", title), (plot, title)


def test_a_report_with_part_of_the_runs_is_not_a_verdict(tmp_path):
    """Two of U1's four measurements in the store (written as the runner writes them): 'not run (2 of 4)',
    although the two alone would decide its first rule."""
    from seqbench.analysis.findings.report import write_report
    from seqbench.bench.store import Store

    finding = findings.select(["U1"])[0]
    sweep, labels = finding.sweep("cpu")
    by_arm = {row["arm"]: row["run_id"] for row in labels}
    for arm, memory in (("matrix state, plain scan", 9e8), ("matrix state, chunked", 1.5e7)):
        run = next(r for r in sweep.runs if r.run_id() == by_arm[arm])
        run_dir = Store(tmp_path).run("findings-cpu", by_arm[arm])
        run_dir.write_config(run.model_dump(mode="json"), {"commit": "0" * 40, "dirty": False})
        run_dir.write_rows([{"model": "gateloop", "mode": run.speed.modes[0], "length": length, "measure": "forward_backward",
                             "status": "ok", "median_ms": 1.0, "peak_memory_bytes": memory} for length in (128, 1024)])
        run_dir.write_summary({"status": "completed", "steps": 0})
    write_report([finding], "cpu", root=tmp_path, out=tmp_path / "report")
    [row] = summary_rows((tmp_path / "report" / "README.md").read_text())
    assert "**not run (2 of 4)**" in row and "reproduced" not in row


def test_options_go_before_or_after_the_finding_ids(tmp_path, capsys):
    main(["findings", "run", "--dry-run", "U5", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert "finding U5 (cpu):" in out and "would submit" in out and "finding U3" not in out
