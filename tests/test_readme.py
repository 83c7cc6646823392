"""The README's verdict table is the committed findings report's, row for row: a re-run that changes
a verdict cannot leave the README quoting the old one."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def verdict_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\| (U|P|S)\d", line)]


def test_the_readme_quotes_every_verdict_of_the_committed_report():
    report = verdict_rows((ROOT / "results" / "findings" / "README.md").read_text())
    from seqbench.analysis.findings import FINDINGS

    assert len(report) == len(FINDINGS)
    assert verdict_rows((ROOT / "README.md").read_text()) == report


def test_the_mixer_skeleton_runs_as_written_once_its_bodies_are_filled(tmp_path, monkeypatch):
    """The README's "Bring your own mixer" skeleton, taken from the README as it stands, its `...`
    bodies filled with a one-projection mixer: `seqbench check`'s contract passes whole."""
    from seqbench.models import conformance

    text = (ROOT / "README.md").read_text()
    skeleton = text.split("# my_package/my_mixer.py\n", 1)[1].split("```", 1)[0]
    assert "super().__init__(d_model=d_model)" in skeleton
    bodies = {
        "        ...  ": "        self.proj = nn.Linear(d_model, d_model)  # ",
        "def _forward(self, x, mode): ...": "def _forward(self, x, mode): return self.proj(x), None  #",
        "def _step(self, x_t, state): ...": "def _step(self, x_t, state): return self.proj(x_t), state  #",
        "def init_state(self, batch_size, device=None, dtype=None): ...": "def init_state(self, batch_size, device=None, dtype=None): return None  #",
        "def state_size(self, seq_len=None): ...": "def state_size(self, seq_len=None): return 1  #",
        "def reference_forward(self, x): ...": "def reference_forward(self, x): return self.proj(x.double())  #",
    }
    for written, filled in bodies.items():
        assert written in skeleton, written
        skeleton = skeleton.replace(written, filled)
    (tmp_path / "readme_mixer.py").write_text(skeleton)
    monkeypatch.syspath_prepend(str(tmp_path))
    results = list(conformance.run_checks("readme_mixer:MyMixer"))
    assert results and all(r.passed for r in results), [(r.check, r.detail) for r in results if not r.passed]


def test_the_readme_is_short_and_every_page_it_links_exists():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links and all((ROOT / link).exists() for link in links), [link for link in links if not (ROOT / link).exists()]
    for page in (ROOT / "docs").glob("*.md"):  # the pages it points to link on, relative to docs/
        broken = [link for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()) if not (page.parent / link).exists()]
        assert broken == [], page.name


def test_the_readme_lists_every_registered_mixer():
    from seqbench import models

    listed = re.findall(r"^\| `([a-z0-9_]+)` \|", (ROOT / "README.md").read_text(), flags=re.M)
    assert sorted(listed) == models.available()  # the table groups them by era; every one is there once


def test_the_demo_numbers_quoted_are_the_committed_runs():
    """Means and 95% t-intervals per model, and the paired differences, recomputed from runs.csv."""
    import pandas as pd

    from seqbench.analysis.protocol import paired_differences, t_interval

    runs = pd.read_csv(ROOT / "results" / "demo-mqar" / "runs.csv")
    text = " ".join((ROOT / "README.md").read_text().split())
    names = {"softmax_attention": "softmax attention", "retnet": "RetNet", "gateloop": "GateLoop"}
    for model, runs_of in runs.groupby("model.name"):
        low, high = t_interval(runs_of["final_accuracy"])
        assert f"{names[model]} {runs_of['final_accuracy'].mean():.3f} [{low:.3f}, {high:.3f}]" in text
    for a, b in (("softmax_attention", "retnet"), ("retnet", "gateloop")):
        difference = paired_differences(runs, arm="model.name", a=a, b=b, value="final_accuracy")
        low, high = t_interval(difference)
        short = {"softmax_attention": "softmax", "retnet": "RetNet", "gateloop": "GateLoop"}
        assert f"{short[a]} − {short[b]} = {difference.mean():+.3f} [{low:+.3f}, {high:+.3f}]" in text
    commit = re.search(r"commit ([0-9a-f]{40})", (ROOT / "results" / "demo-mqar" / "README.md").read_text()).group(1)
    assert f"commit {commit[:7]}" in text
