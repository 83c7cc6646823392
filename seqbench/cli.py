"""seqbench command line: each subcommand parses its arguments and calls the library (the same
functions the tests call). The top of the house: cli → slurm | analysis → bench → tasks → models."""
from __future__ import annotations

import argparse
import json
import os
import sys

from seqbench.core import RunStopped


def cmd_models(args) -> None:
    from seqbench import models
    from seqbench.core import format_listing

    print(format_listing(models.describe()))
    print("(* default mode)")


def cmd_tasks(args) -> None:
    from seqbench import tasks
    from seqbench.core import format_listing

    print(format_listing(tasks.describe()))


def cmd_build(args) -> None:
    from seqbench import models
    from seqbench.models import cpp_build

    failed = []
    for name, source in models.compiled_kernels().items():
        module, reason = cpp_build.build(source, force=args.force)
        print(f"{name}: {'built' if module is not None else 'unavailable — ' + reason}  ({cpp_build.build_folder(source)})")
        if module is None:
            failed.append(name)
    if failed:
        sys.exit(f"seqbench build: {', '.join(failed)} could not be built; runs use the PyTorch paths instead")


def cmd_gpu_check(args) -> None:
    from seqbench.gpu_check import gpu_check

    result = gpu_check(device=args.device, quick=args.quick, out=args.out, tests=not args.no_tests)
    for part, text in result["summary"].items():
        print(f"{part}: {text}")
    print(f"wrote {args.out}/README.md and {len(result['written'])} tables and plots")


def cmd_check(args) -> None:
    from seqbench.bench.sweep import parse_override
    from seqbench.models import conformance

    options = dict(parse_override(text) for text in args.option)
    results = list(conformance.run_checks(args.mixer, options))
    print(conformance.format_results(results))
    failed = [r.check for r in results if not r.passed]
    if failed:
        sys.exit(f"seqbench check: {args.mixer} fails {len(failed)} check(s): {', '.join(failed)}")


def cmd_compare(args) -> None:
    from seqbench.compare import SUITES, compare, plan

    suites = list(SUITES) if args.suite == "all" else args.suite.split(",")
    baselines = args.baselines.split(",") if args.baselines else None
    if args.dry_run:
        plan(args.mixer, suites=suites, budget=args.budget, root=args.root, baselines=baselines, corpus=args.corpus,
             parallel=args.parallel)
        return
    readme = compare(args.mixer, suites=suites, budget=args.budget, executor=args.executor, root=args.root, out=args.out,
                     baselines=baselines, corpus=args.corpus, run=not args.report_only, accept_changed_code=args.accept_changed_code,
                     overrides=_overrides(args), parallel=args.parallel)
    if readme is not None:
        print(f"wrote {readme}")


def cmd_run(args) -> None:
    from seqbench.bench.config import load_run_config
    from seqbench.bench.runner import run_in_foreground

    summary = run_in_foreground(load_run_config(args.config), root=args.root, sweep=args.sweep)
    print(json.dumps({k: v for k, v in summary.items() if k != "layers"}, indent=1, default=str))


def _overrides(args) -> dict:
    from seqbench.slurm.parameters import DESCRIPTIONS, parse_assignment

    named = {name: getattr(args, name) for name in DESCRIPTIONS}
    return {**named, **dict(parse_assignment(text) for text in args.slurm)}


def cmd_sweep(args) -> None:
    from seqbench.bench.sweep import load_sweep
    from seqbench.campaign import run_sweep

    if args.json:
        print(json.dumps(load_sweep(args.file, args.set, max_runs=args.max_runs).expanded(), indent=1))
        return
    sweep, submission = run_sweep(args.file, args.set, max_runs=args.max_runs, root=args.root, executor=args.executor,
                                  dry_run=args.dry_run, overrides=_overrides(args), parallel=args.parallel,
                                  command=args.invocation, accept_changed_code=args.accept_changed_code)
    if args.dry_run or args.executor == "slurm":
        return
    from seqbench.analysis.collect import collect
    from seqbench.analysis.report import plot_sweep_report, sweep_table

    print(sweep_table(collect(sweep.name, args.root)[0]))
    if args.plot:
        for path in plot_sweep_report(sweep.name, args.root):
            print(f"wrote {path}")
    if submission.failed:
        sys.exit(f"{len(submission.failed)} run(s) failed; see: seqbench status {sweep.name}")


def cmd_speed(args) -> None:
    from seqbench.campaign import run_speed

    name = run_speed(args.files, args.set, max_runs=args.max_runs, root=args.root, executor=args.executor,
                     overrides=_overrides(args), command=args.invocation, accept_changed_code=args.accept_changed_code)
    if args.executor == "slurm":
        print(f"submitted; when done: seqbench speed {' '.join(args.files)} (skips what finished and writes the report)")
        return
    import pandas as pd

    from seqbench.analysis.report import speed_report

    summary, written = speed_report(name, args.root, args.out)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print(summary.to_string(index=False))
    for path in written:
        print(f"wrote {path}")


def cmd_status(args) -> None:
    from seqbench.slurm.status import format_status, sweep_status

    print(format_status(args.sweep, sweep_status(args.sweep, args.root)))


def cmd_collect(args) -> None:
    from seqbench.analysis.collect import collect, table_path
    from seqbench.analysis.report import sweep_table

    print(sweep_table(collect(args.sweep, args.root)[0]))
    print(f"saved {table_path(args.sweep, args.root, 'runs')} and curves.parquet")


def cmd_plot(args) -> None:
    from seqbench.analysis.report import plot_sweep_report

    for path in plot_sweep_report(args.sweep, args.root):
        print(f"wrote {path}")


def cmd_report(args) -> None:
    from seqbench.analysis.report import export_results

    written = export_results(args.sweep, args.root, args.out, command=args.command_line or "")
    for path in written:
        print(f"wrote {path}")
    paired = next((path for path in written if path.name == "paired.csv"), None)
    if paired is not None:
        print(format_paired(paired))


def format_paired(path) -> str:
    """paired.csv as the lines a README quotes: a − b = mean [95% t-interval] over n paired seeds."""
    import pandas as pd

    table = pd.read_csv(path)
    return "\n".join(["paired by seed, at each arm's chosen lr (positive favours the first):",
                      *(f"  {r['a']} − {r['b']} = {r['a − b']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] ({r['metric']}, "
                        f"{r['seeds']} seeds)" for _, r in table.iterrows())])


def cmd_cancel(args) -> None:
    from seqbench.slurm.status import cancel

    print(f"cancelled jobs: {', '.join(cancel(args.sweep, args.root)) or '(none)'}")


def cmd_archive(args) -> None:
    from seqbench.bench.archive import archive

    manifest = archive(args.sweeps, args.out, args.root)
    counts = ", ".join(f"{sweep}: {len(runs)}" for sweep, runs in manifest["sweeps"].items())
    print(f"wrote {args.out} ({len(manifest['files'])} files; finished runs per sweep: {counts})")


def cmd_restore(args) -> None:
    from seqbench.bench.archive import restore

    added = restore(args.archive, args.root)
    print("restored " + ", ".join(f"{sweep}: {n} run(s) added" for sweep, n in added.items()))


def cmd_data(args) -> None:
    from seqbench.tasks.dictionaries import fetch_dictionary

    path = fetch_dictionary(args.corpus, args.data_dir, args.deb)
    print(f"{path}  (use it as: task = {{ name = \"bytes\", options = {{ path = \"{path.name}\" }} }})")


def cmd_findings(args) -> None:
    from seqbench.analysis import findings

    chosen = findings.select(args.ids)
    if args.action == "list":
        from seqbench.analysis.findings.report import format_listing

        print(format_listing(chosen))
        return
    if args.action == "run":
        from seqbench.campaign import run_findings

        run_findings(chosen, scale=args.scale, corpora=args.corpus or [None], root=args.root, executor=args.executor,
                     parallel=args.parallel, dry_run=args.dry_run, overrides=_overrides(args), command=args.invocation)
        return
    from seqbench.analysis.findings.report import write_report

    for path in write_report(chosen, args.scale, root=args.root, out=args.out, corpora=args.corpus or [None]):
        print(f"wrote {path}")


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

    commands.add_parser("models", help="list mixers with their modes and options", parents=[rooted]).set_defaults(func=cmd_models)
    commands.add_parser("tasks", help="list tasks with their options", parents=[rooted]).set_defaults(func=cmd_tasks)

    build = commands.add_parser("build", help="build the compiled CPU kernels now (a login node, or an array's first step)",
                                parents=[rooted])
    build.add_argument("--force", action="store_true", help="retry a build recorded as failed")
    build.set_defaults(func=cmd_build)

    gpu = commands.add_parser("gpu-check", help="on a GPU node: numerics, fla, bf16, speed and throughput → results/gpu", parents=[rooted])
    gpu.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: the same code path, for CI")
    gpu.add_argument("--quick", action="store_true", help="tiny sizes (seconds, not minutes)")
    gpu.add_argument("--out", default="results/gpu", help="folder to write (default: results/gpu)")
    gpu.add_argument("--no-tests", action="store_true", help="skip the pytest run of the tests marked cuda")
    gpu.set_defaults(func=cmd_gpu_check)

    check = commands.add_parser("check", help="the mixer contract on any mixer: a registered name or package.module:Class", parents=[rooted])
    check.add_argument("mixer", help="e.g. gateloop, or my_package.my_module:MyMixer")
    check.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="a constructor option (TOML value)")
    check.set_defaults(func=cmd_check)

    compare = commands.add_parser("compare", help="a mixer against the baselines through the standard suites, one report",
                                  parents=[rooted])
    compare.add_argument("mixer", help="a registered name or package.module:Class")
    compare.add_argument("--suite", default="all", help="mqar, mad, lm, speed, state (comma-separated) or all")
    compare.add_argument("--budget", default="cpu", choices=["quick", "cpu", "cluster"],
                         help="quick: minutes, to see it work; cpu: a 2-core machine; cluster: the suites' published scale")
    compare.add_argument("--baselines", default=None, help="comma-separated mixers (default: every registered one)")
    compare.add_argument("--corpus", default=None, help="lm suite: the corpus file (default: gcide.dict.dz)")
    compare.add_argument("--out", default=None, help="report folder (default: results/compare/compare-<mixer>-report)")
    compare.add_argument("--report-only", action="store_true",
                         help="write the report from the runs that finished (the rest shown as missing); submit nothing")
    compare.add_argument("--dry-run", action="store_true",
                         help="print each suite's sweeps, runs and the machine time left here (measured step costs); submit nothing")
    compare.add_argument("--parallel", type=int, default=None, help="local: training runs at once (speed runs alone)")
    _executor_arguments(compare, overrides=False)  # --executor, every Slurm parameter, --slurm, --accept-changed-code
    compare.set_defaults(func=cmd_compare)

    run = commands.add_parser("run", help="one run config (JSON or TOML) in the foreground", parents=[rooted])
    run.add_argument("config")
    run.add_argument("--sweep", default="single", help="folder under the results root (default: single)")
    run.set_defaults(func=cmd_run)

    sweep = commands.add_parser("sweep", help="expand a sweep file and run what is not finished", parents=[rooted])
    sweep.add_argument("file")
    _executor_arguments(sweep)
    sweep.add_argument("--dry-run", action="store_true", help="list the runs, submit nothing")
    sweep.add_argument("--json", action="store_true", help="print the expanded runs as JSON, submit nothing")
    sweep.add_argument("--parallel", type=int, default=None, help="local: runs at once (default: CPUs / cpus_per_task)")
    sweep.add_argument("--plot", action="store_true", help="local/debug: draw the plots when done")
    sweep.set_defaults(func=cmd_sweep)

    speed = commands.add_parser("speed", help="run speed / gateloop_op sweep files one run at a time, then write the speed report", parents=[rooted])
    speed.add_argument("files", nargs="+", metavar="FILE")
    _executor_arguments(speed)
    speed.add_argument("--out", default=None, help="report folder (default: <root>/<sweep>/plots)")
    speed.set_defaults(func=cmd_speed)

    for name, func, text in (("status", cmd_status, "counts per state, lease holders, last error of failed runs"),
                             ("collect", cmd_collect, "build the runs/curves tables and save them as parquet"),
                             ("plot", cmd_plot, "seaborn plots of a sweep"),
                             ("cancel", cmd_cancel, "cancel every active Slurm job of a sweep")):
        sub = commands.add_parser(name, help=text, parents=[rooted])
        sub.add_argument("sweep")
        sub.set_defaults(func=func)
    packed = commands.add_parser("archive", help="pack the finished runs of sweeps (no checkpoints) into one .tar.gz "
                                 "that a results root elsewhere can restore", parents=[rooted])
    packed.add_argument("sweeps", nargs="+", metavar="SWEEP")
    packed.add_argument("--out", required=True, help="the archive to write, e.g. results/findings/runs.tar.gz")
    packed.set_defaults(func=cmd_archive)
    unpacked = commands.add_parser("restore", help="unpack a `seqbench archive` into the results root; never overwrites "
                                   "a different run", parents=[rooted])
    unpacked.add_argument("archive")
    unpacked.set_defaults(func=cmd_restore)
    data = commands.add_parser("data", help="fetch a corpus into the data directory ($SEQBENCH_DATA or ~/.cache/seqbench)",
                                 parents=[rooted])
    data.add_argument("corpus", choices=["gcide", "wordnet"],
                      help="gcide: Debian's dict-gcide, wordnet: dict-wn (apt-get download): the CPU-scale text corpora")
    data.add_argument("--deb", default=None, help="the corpus's .deb downloaded by hand (no apt-get)")
    data.add_argument("--data-dir", default=None, help="where to put it (default: $SEQBENCH_DATA or ~/.cache/seqbench)")
    data.set_defaults(func=cmd_data)
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
    findings.set_defaults(func=cmd_findings)
    report = commands.add_parser("report", help="export a finished sweep for results/: runs.csv, best-over-lr, plots, provenance", parents=[rooted])
    report.add_argument("sweep")
    report.add_argument("--out", required=True, help="folder to write (e.g. results/<sweep>)")
    report.add_argument("--command-line", default=None, help="the command that produced the runs, recorded in README.md")
    report.set_defaults(func=cmd_report)
    for action in commands._choices_actions:  # every subcommand's --help: its one-line purpose and each default
        sub = commands.choices[action.dest]
        sub.description = sub.description or action.help
        sub.formatter_class = DefaultsSaid
    return parser


def main(argv: list[str] | None = None) -> None:
    import shlex

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "findings" and not any(item.startswith("-") for item in extra):
        args.ids = [*args.ids, *extra]  # ids after an option: `findings run --dry-run U3`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.invocation = shlex.join(["seqbench", *(sys.argv[1:] if argv is None else argv)])
    try:
        args.func(args)
    except (ValueError, RunStopped) as error:
        sys.exit(f"seqbench {args.command}: {error}")
    except BrokenPipeError:  # output piped into head & co.
        sys.stdout = open(os.devnull, "w")
    except OSError as error:  # a full disk, a permission: one line, not a traceback
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        sys.exit(f"seqbench {args.command}: {error.strerror or error}{where}")


if __name__ == "__main__":
    main()
