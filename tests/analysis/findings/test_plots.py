"""A finding's plot (analysis/findings/plots.py) says what the report says: its title is the report's
verdict text, "not run (k of n)" included, and a probe without finished runs says so in its panel."""
import pandas as pd
from PIL import Image

from seqbench.analysis.findings import BY_ID
from seqbench.analysis.findings.plots import plot_finding


def test_an_unrun_finding_is_titled_not_run_and_draws_no_arm(tmp_path):
    finding = BY_ID["U3"]
    path = plot_finding(finding, "not run (0 of 18)", pd.DataFrame(columns=["run_id", "status", "arm", "probe", "lr", "seed"]),
                        pd.DataFrame(), [], tmp_path / "plot.png")
    title = Image.open(path).text.get("Title", "")
    assert "not run (0 of 18)" in title and "reproduced" not in title
