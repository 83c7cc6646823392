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
