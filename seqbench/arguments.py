"""The `seqbench` command's arguments: every subcommand, option and default, each with its help — and
nothing else (seqbench/cli.py runs the subcommand the parsed arguments name)."""
from __future__ import annotations

import argparse


def _executor_arguments(parser: argparse.ArgumentParser, *, overrides: bool = True) -> None:
    from seqbench.bench.sweep import MAX_RUNS
    from seqbench.slurm.parameters import DESCRIPTIONS, EXECUTORS, GENERIC, slurm_parameters

    parser.add_argument("--executor", choices=EXECUTORS, default="local", help="where the runs execute")
    if overrides:
        parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                            help="set a base field of the sweep, e.g. --set steps=100 --set model.d_model=128")
        parser.add_argument("--max-runs", type=int, default=MAX_RUNS,
                            help=f"refuse a sweep that expands to more runs than this (default {MAX_RUNS:,})")
    for name, meaning in DESCRIPTIONS.items():
        kind = GENERIC.get(name) or slurm_parameters().get(name)
        number = kind in (int, float) or "int" in str(kind)
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, help=meaning,
                            type=(float if kind is float else int) if number else str)
    parser.add_argument("--accept-changed-code", action="store_true",
                        help="count finished runs as finished although the source of a mixer or task they name by import "
                             "path changed since they trained (default: refuse, naming them)")
    parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                        help="any other parameter of submitit's Slurm executor (values read as TOML), e.g. "
                             "--slurm 'setup=[\"module load cuda\"]' --slurm 'additional_parameters={reservation=\"x\"}'")


class DefaultsSaid(argparse.HelpFormatter):
    """--help with each option's default where its text does not say it already (no "default: None" noise)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: {action.default})".strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqbench", description="Benchmark and ablation harness for sequence mixers.")
    parser.add_argument("--root", default=None, help="results root (default: $SEQBENCH_RESULTS or ./runs)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # --root is accepted after the subcommand too (`seqbench findings report --root DIR`)
    rooted = argparse.ArgumentParser(add_help=False)
    rooted.add_argument("--root", default=argparse.SUPPRESS, help="results root (default: $SEQBENCH_RESULTS or ./runs)")

    commands.add_parser("models", help="list mixers with their modes and options", parents=[rooted])
    commands.add_parser("tasks", help="list tasks with their options", parents=[rooted])

    build = commands.add_parser("build", help="build the compiled CPU kernels now (a login node, or an array's first step)",
                                parents=[rooted])
    build.add_argument("--force", action="store_true", help="retry a build recorded as failed")

    gpu = commands.add_parser("gpu-check", help="on a GPU node: numerics, fla, bf16, speed and throughput → results/gpu", parents=[rooted])
    gpu.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: the same code path, for CI")
    gpu.add_argument("--quick", action="store_true", help="tiny sizes (seconds, not minutes)")
    gpu.add_argument("--out", default="results/gpu", help="folder to write (default: results/gpu)")
    gpu.add_argument("--no-tests", action="store_true", help="skip the pytest run of the tests marked cuda")

    check = commands.add_parser("check", help="the mixer contract on any mixer: a registered name or package.module:Class", parents=[rooted])
    check.add_argument("mixer", help="e.g. gateloop, or my_package.my_module:MyMixer")
    check.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="a constructor option (TOML value)")

    compare = commands.add_parser("compare", help="a mixer against the baselines through the standard suites, one report",
                                  parents=[rooted])
    compare.add_argument("mixer", help="a registered name or package.module:Class")
    compare.add_argument("--suite", default="all", help="mqar, mad, lm, speed, state, length (comma-separated) or all")
    compare.add_argument("--budget", default="cpu", choices=["quick", "cpu", "cluster"],
                         help="quick: minutes, to see it work; cpu: a 2-core machine; cluster: the suites' published scale")
    compare.add_argument("--baselines", default=None, help="comma-separated mixers (default: every registered one; "
                         "quick: softmax_attention and gla)")
    compare.add_argument("--corpus", default=None, help="lm suite: the corpus file (default: gcide.dict.dz)")
    compare.add_argument("--out", default=None, help="report folder (default: results/compare/compare-<mixer>-report)")
    compare.add_argument("--report-only", action="store_true",
                         help="write the report from the runs that finished (the rest shown as missing); submit nothing")
    compare.add_argument("--dry-run", action="store_true",
                         help="print each suite's sweeps, runs and the machine time left here (measured step costs); submit nothing")
    compare.add_argument("--parallel", type=int, default=None, help="local: training runs at once (speed runs alone)")
    _executor_arguments(compare, overrides=False)  # --executor, every Slurm parameter, --slurm, --accept-changed-code

    run = commands.add_parser("run", help="one run config (JSON or TOML) in the foreground", parents=[rooted])
    run.add_argument("config")
    run.add_argument("--sweep", default="single", help="folder under the results root (default: single)")

    sweep = commands.add_parser("sweep", help="expand a sweep file and run what is not finished", parents=[rooted])
    sweep.add_argument("file")
    _executor_arguments(sweep)
    sweep.add_argument("--dry-run", action="store_true", help="list the runs, submit nothing")
    sweep.add_argument("--json", action="store_true", help="print the expanded runs as JSON, submit nothing")
    sweep.add_argument("--parallel", type=int, default=None, help="local: runs at once (default: CPUs / cpus_per_task)")
    sweep.add_argument("--plot", action="store_true", help="local/debug: draw the plots when done")

    speed = commands.add_parser("speed", help="run speed / gateloop_op sweep files one run at a time, then write the speed report", parents=[rooted])
    speed.add_argument("files", nargs="+", metavar="FILE")
    _executor_arguments(speed)
    speed.add_argument("--out", default=None, help="report folder (default: <root>/<sweep>/plots)")

    for name, text in (("status", "counts per state, lease holders, last error of failed runs"),
                       ("collect", "build the runs/curves tables and save them as parquet"),
                       ("plot", "seaborn plots of a sweep"),
                       ("cancel", "cancel every active Slurm job of a sweep")):
        sub = commands.add_parser(name, help=text, parents=[rooted])
        sub.add_argument("sweep")
    packed = commands.add_parser("archive", help="pack the finished runs of sweeps (no checkpoints) into one .tar.gz "
                                 "that a results root elsewhere can restore", parents=[rooted])
    packed.add_argument("sweeps", nargs="+", metavar="SWEEP")
    packed.add_argument("--out", required=True, help="the archive to write, e.g. results/findings/runs.tar.gz")
    unpacked = commands.add_parser("restore", help="unpack a `seqbench archive` into the results root; never overwrites "
                                   "a different run", parents=[rooted])
    unpacked.add_argument("archive")
    data = commands.add_parser("data", help="fetch a corpus into the data directory ($SEQBENCH_DATA or ~/.cache/seqbench)",
                                 parents=[rooted])
    data.add_argument("corpus", choices=["gcide", "wordnet"],
                      help="gcide: Debian's dict-gcide, wordnet: dict-wn (apt-get download): the CPU-scale text corpora")
    data.add_argument("--deb", default=None, help="the corpus's .deb downloaded by hand (no apt-get)")
    data.add_argument("--data-dir", default=None, help="where to put it (default: $SEQBENCH_DATA or ~/.cache/seqbench)")
    findings = commands.add_parser("findings", help="published findings: list, run their sweeps, report verdicts", parents=[rooted])
    findings.add_argument("action", choices=["list", "run", "report"])
    findings.add_argument("ids", nargs="*", metavar="ID", help="finding ids (default: all), e.g. U3 P1")
    findings.add_argument("--scale", choices=["cpu", "cluster"], default="cpu")
    _executor_arguments(findings, overrides=False)  # a finding's runs are fixed by its record
    findings.add_argument("--parallel", type=int, default=None, help="local: training runs at once (measurements run alone)")
    findings.add_argument("--dry-run", action="store_true", help="run: list the runs, submit nothing")
    findings.add_argument("--out", default="results/findings", help="report: folder to write (default: results/findings)")
    findings.add_argument("--corpus", action="append", default=[], metavar="PATH",
                          help="cpu scale: the language-modelling corpus (default: gcide.dict.dz in the data directory); "
                               "repeat it for replications: the first corpus tunes each arm's lr, every further one runs "
                               "the arms at those lrs, and the report gives each corpus a verdict column")
    report = commands.add_parser("report", help="export a finished sweep for results/: runs.csv, best-over-lr, plots, provenance", parents=[rooted])
    report.add_argument("sweep")
    report.add_argument("--out", required=True, help="folder to write (e.g. results/<sweep>)")
    report.add_argument("--command-line", default=None, help="the command that produced the runs, recorded in README.md")
    for action in commands._choices_actions:  # every subcommand's --help: its one-line purpose and each default
        sub = commands.choices[action.dest]
        sub.description = sub.description or action.help
        sub.formatter_class = DefaultsSaid
    return parser
