"""Every `seqbench` subcommand, driven as a user would, on tiny sweeps in a temporary folder."""
import json
import subprocess
import sys

import pytest

from seqbench.cli import main
from tests.helpers import tiny_run_config, write_tiny_sweep


def seqbench(capsys, *argv) -> str:
    main(list(argv))
    return capsys.readouterr().out


def test_models_and_tasks_list_every_option_with_its_meaning(capsys):
    from seqbench import models, tasks

    listing = seqbench(capsys, "models")
    for row in models.describe():
        assert row["name"] in listing
        for option in row["options"]:
            assert f"    {option} = " in listing and row["option_docs"].get(option), (row["name"], option)
    assert "recurrent*" in listing
    listing = seqbench(capsys, "tasks")
    for row in tasks.describe():
        assert all(row["option_docs"].get(option) for option in row["options"]), row["name"]


def test_run_a_config_file(tmp_path, capsys):
    config = tmp_path / "run.json"
    config.write_text(json.dumps(tiny_run_config()))
    summary = json.loads(seqbench(capsys, "--root", str(tmp_path / "runs"), "run", str(config)))
    assert summary["status"] == "completed" and summary["steps"] == 20
    assert len(list((tmp_path / "runs" / "single").iterdir())) == 1


@pytest.mark.slow
def test_sweep_dry_run_json_local_collect_plot_status_cancel(tmp_path, capsys):
    sweep_file, root = write_tiny_sweep(tmp_path), str(tmp_path / "runs")
    listing = seqbench(capsys, "--root", root, "sweep", str(sweep_file), "--dry-run")
    assert "4 to run" in listing and listing.count("[would submit]") == 4
    expanded = json.loads(seqbench(capsys, "--root", root, "sweep", str(sweep_file), "--json", "--set", "steps=10"))
    assert len(expanded) == 4 and all(run["config"]["steps"] == 10 for run in expanded)
    assert {run["axes"]["model.name"] for run in expanded} == {"retnet", "linear_attention"}

    table = seqbench(capsys, "--root", root, "sweep", str(sweep_file), "--parallel", "2", "--plot")
    assert table.count("completed") == 4 and "final.png" in table and "curves.png" in table
    assert "4 finished" in seqbench(capsys, "--root", root, "sweep", str(sweep_file), "--dry-run")
    assert "completed 4" in seqbench(capsys, "--root", root, "status", "tiny")
    assert "runs.parquet" in seqbench(capsys, "--root", root, "collect", "tiny")
    assert seqbench(capsys, "--root", root, "plot", "tiny").count("wrote") == 2
    assert "cancelled jobs: (none)" in seqbench(capsys, "--root", root, "cancel", "tiny")


@pytest.mark.slow
def test_speed_writes_the_report(tmp_path, capsys):
    speed_file = tmp_path / "speed.toml"
    speed_file.write_text('name = "speedy"\n[base]\nkind = "speed"\nmodel = { name = "linear_attention", d_model = 16 }\n'
                          'speed = { lengths = [16, 32], repeats = 2, threads = 1, decode_prefills = [8], modes = ["chunked"] }\n')
    op_file = tmp_path / "op.toml"
    op_file.write_text('name = "speedy"\n[base]\nkind = "gateloop_op"\nlengths = [16, 32]\nbatch_size = 1\nchannels = 4\n'
                       'repeats = 2\nthreads = 1\nimplementations = ["torch recurrent loop"]\n')
    out = seqbench(capsys, "--root", str(tmp_path / "runs"), "speed", str(speed_file), str(op_file), "--out", str(tmp_path / "report"))
    for name in ("speed.csv", "speed_summary.csv", "speed.png", "gateloop_op.csv", "gateloop_op.png"):
        assert (tmp_path / "report" / name).exists() and name in out


@pytest.mark.parametrize("argv,message", [
    (["status", "../escape"], "invalid sweep name '../escape'"),
    (["collect", "nothing-here"], "no sweep 'nothing-here'"),
    (["sweep", "missing.toml"], "sweep file missing.toml does not exist"),
    (["run", "missing.json"], "config file missing.json does not exist"),
])
def test_bad_input_is_one_clear_line(tmp_path, argv, message):
    result = subprocess.run([sys.executable, "-m", "seqbench.cli", "--root", str(tmp_path), *argv],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3


def test_run_on_a_run_another_trainer_holds_is_one_line(tmp_path):
    """A live trainer (here: this test process) holds the run's lease: `seqbench run` says who, in one line."""
    from seqbench.bench.config import parse_run_config
    from seqbench.bench.lease import Lease
    from seqbench.bench.store import Store

    config = parse_run_config(tiny_run_config())
    (tmp_path / "run.json").write_text(json.dumps(config.model_dump(mode="json")))
    run_dir = Store(tmp_path / "runs").run("single", config.run_id())
    run_dir.path.mkdir(parents=True)
    lease = Lease(run_dir.lease_path, {"job": "held by the test"})
    lease.acquire(wait_s=0)
    try:
        result = subprocess.run([sys.executable, "-m", "seqbench.cli", "--root", str(tmp_path / "runs"), "run", "run.json"],
                                capture_output=True, text=True, cwd=tmp_path)
    finally:
        lease.release()
    assert result.returncode == 1 and f"seqbench run: run {config.run_id()} is being trained by" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_report_exports_a_clean_sweep_and_refuses_a_dirty_one(tmp_path, capsys):
    from seqbench.bench.store import Store

    sweep_file, root = write_tiny_sweep(tmp_path, "exported"), str(tmp_path / "runs")
    seqbench(capsys, "--root", root, "sweep", str(sweep_file), "--set", "steps=10")
    sweep_dir = Store(root).sweep("exported")

    def mark(dirty: bool, only: int | None = None):
        for index, run_id in enumerate(sweep_dir.run_ids()):
            stored = sweep_dir.run(run_id).read_config()
            stored["provenance"].update(commit="0" * 40, dirty=dirty if only in (None, index) else not dirty)
            sweep_dir.run(run_id).write_config(stored["config"], stored["provenance"])

    mark(dirty=False)
    out = tmp_path / "results" / "exported"
    listing = seqbench(capsys, "--root", root, "report", "exported", "--out", str(out))
    assert {"runs.csv", "final.png", "curves.png", "README.md"} <= {p.name for p in out.iterdir()} and "wrote" in listing
    # the command that launched the sweep, recorded at submit time, not a placeholder
    assert f"- command: `seqbench --root {root} sweep {sweep_file} --set steps=10`" in (out / "README.md").read_text()
    import pandas as pd

    table = pd.read_csv(out / "runs.csv")
    assert {"parameters", "optimizer.lr", "seed", "provenance.commit"} <= set(table.columns) and len(table) == 4
    assert "commit " + "0" * 40 in (out / "README.md").read_text()
    mark(dirty=True, only=0)
    with pytest.raises(SystemExit, match="come from a dirty tree"):
        main(["--root", root, "report", "exported", "--out", str(out)])


def test_status_stays_light():
    """`seqbench status` on a login node: no pandas, no analysis layer."""
    probe = "import sys; from seqbench.cli import build_parser; import seqbench.slurm.status; " \
            "print('pandas' in sys.modules, 'seqbench.analysis' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr


@pytest.mark.parametrize("command", ["status", "collect", "plot", "cancel", "run", "compare", "sweep", "speed", "findings", "report"])
def test_every_subcommands_help_says_what_it_does_and_its_defaults(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]
    assert description.strip() and not description.startswith(("positional", "options")), text
    if command == "compare":
        assert "(default: all)" in text and "(default: cpu)" in text


def test_restoring_an_archive_of_no_sweeps_says_so(tmp_path, capsys):
    import io
    import tarfile

    manifest = json.dumps({"sweeps": {}, "files": {}}).encode()
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tar:
        member = tarfile.TarInfo("manifest.json")
        member.size = len(manifest)
        tar.addfile(member, io.BytesIO(manifest))
    out = seqbench(capsys, "--root", str(tmp_path / "runs"), "restore", str(tmp_path / "a.tar.gz"))
    assert out.strip() == f"restored nothing: {tmp_path / 'a.tar.gz'} holds no finished run"


def test_paired_lines_give_an_interval_only_where_there_are_seeds_to_make_one(tmp_path):
    from seqbench.cli import format_paired

    (tmp_path / "paired.csv").write_text("a,b,metric,seeds,a − b,low,high\n"
                                         "x,y,final_accuracy,3,0.5,0.4,0.6\nx,z,final_accuracy,1,0.3,,\n")
    lines = format_paired(tmp_path / "paired.csv").splitlines()
    assert lines[1] == "  x − y = +0.500 [+0.400, +0.600] (final_accuracy, 3 seeds)"
    assert lines[2] == "  x − z = +0.300 (final_accuracy, 1 seed: no interval)"
