"""seqbench command line: each subcommand parses its arguments and calls the library (the same
functions the tests call). The top of the house: cli → slurm | analysis → bench → tasks → models."""
from __future__ import annotations

import inspect
import json
import os
import sys
import warnings
from typing import Any

from seqbench.arguments import build_parser
from seqbench.core import RunStopped


def format_registry(rows: list[dict[str, Any]]) -> str:
    """What `seqbench models` / `seqbench tasks` print: name, modes, summary, each option with its
    default and its one-line meaning."""
    lines = []
    for row in rows:
        modes = ""
        if "modes" in row:
            modes = "  modes: " + ", ".join(f"{m}*" if m == row["default_mode"] else m for m in row["modes"])
        origin = "" if row.get("origin", "built-in") == "built-in" else f"  [{row['origin']}]"
        lines += [f"{row['name']}{modes}{origin}", f"  {row['summary']}"]
        for option, default in row["options"].items():
            shown = "(required)" if default is inspect.Parameter.empty else repr(default)
            meaning = row["option_docs"].get(option, "")
            lines.append(f"    {option} = {shown}" + (f"  — {meaning}" if meaning else ""))
    return "\n".join(lines)


def cmd_models(args) -> None:
    from seqbench import models
    print(format_registry(models.describe()))
    print("(* default mode)")


def cmd_tasks(args) -> None:
    from seqbench import tasks
    print(format_registry(tasks.describe()))


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
    from seqbench.bench.runner import run_file

    summary = run_file(args.config, root=args.root, sweep=args.sweep)
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
                      *(f"  {r['a']} − {r['b']} = {r['a − b']:+.3f} "
                        + (f"[{r['low']:+.3f}, {r['high']:+.3f}] ({r['metric']}, {r['seeds']} seeds)" if r["seeds"] > 1
                           else f"({r['metric']}, {r['seeds']} seed: no interval)") for _, r in table.iterrows())])


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
    print("restored " + (", ".join(f"{sweep}: {n} run(s) added" for sweep, n in added.items())
                         or f"nothing: {args.archive} holds no finished run"))


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


COMMANDS = {"models": cmd_models, "tasks": cmd_tasks, "build": cmd_build, "gpu-check": cmd_gpu_check, "check": cmd_check,
            "compare": cmd_compare, "run": cmd_run, "sweep": cmd_sweep, "speed": cmd_speed, "status": cmd_status,
            "collect": cmd_collect, "plot": cmd_plot, "cancel": cmd_cancel, "archive": cmd_archive, "restore": cmd_restore,
            "data": cmd_data, "findings": cmd_findings, "report": cmd_report}


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the user reads it: what happened to which file, not the source line that noticed."""
    return f"seqbench: warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    import shlex

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "findings" and not any(item.startswith("-") for item in extra):
        args.ids = [*args.ids, *extra]  # ids after an option: `findings run --dry-run U3`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.invocation = shlex.join(["seqbench", *(sys.argv[1:] if argv is None else argv)])
    warnings.formatwarning = one_line_warning
    try:
        COMMANDS[args.command](args)
    except (ValueError, RunStopped) as error:
        sys.exit(f"seqbench {args.command}: {error}")
    except BrokenPipeError:  # output piped into head & co.
        sys.stdout = open(os.devnull, "w")
    except OSError as error:  # a full disk, a permission: one line, not a traceback
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        sys.exit(f"seqbench {args.command}: {error.strerror or error}{where}")


if __name__ == "__main__":
    main()
