"""Executor parameters: every parameter submitit's Slurm executor accepts, by submitit's own list.

A sweep file's [executor] section and the command line (`--slurm KEY=VALUE`, or the named flags
below) may set:

- the parameters submitit shares between its executors (`timeout_min`, `mem_gb`, `cpus_per_task`,
  `gpus_per_node`, `tasks_per_node`, `nodes`, `stderr_to_stdout`), which local runs honour too;
- any parameter of submitit's SlurmExecutor (`partition`, `setup`, `additional_parameters`,
  `srun_args`, `exclude`, `nodelist`, `mem_per_gpu`, `cpus_per_gpu`, `exclusive`, …), by its name
  with or without the `slurm_` prefix, read from the installed submitit so a newer one's additions
  are accepted as they come; and `max_num_timeout` (requeues after a timeout).

Unknown names fail listing the valid ones, and every value is type-checked against submitit's own
signature — at config time, never on the cluster. `time` and `mem` are refused in favour of the
shared `timeout_min` and `mem_gb` (setting both would be ambiguous); `job_name` is seqbench's.
"""
from __future__ import annotations

import collections.abc
import inspect
import typing
from functools import cache
from typing import Any

# where a sweep runs: here (local), on Slurm, or in this process (debug, submitit's own debug executor)
EXECUTORS = ("local", "slurm", "debug")
GENERIC = {"timeout_min": int, "mem_gb": float, "cpus_per_task": int, "gpus_per_node": int, "tasks_per_node": int,
           "nodes": int, "stderr_to_stdout": bool}
MINIMUM = {"timeout_min": 1, "mem_gb": 0, "cpus_per_task": 1, "gpus_per_node": 0, "tasks_per_node": 1, "nodes": 1,
           "array_parallelism": 1, "max_num_timeout": 0}
REPLACED = {"time": "timeout_min", "mem": "mem_gb", "job_name": None}  # Slurm names with a shared equivalent, or seqbench's own
DEFAULTS = {"timeout_min": 60, "cpus_per_task": 1, "gpus_per_node": 0}
# what `seqbench … --help` says of each named flag (every other parameter: --slurm KEY=VALUE)
DESCRIPTIONS = {
    "partition": "Slurm partition to queue in (sbatch --partition)",
    "gpus_per_node": "GPUs per node for each run (sbatch --gpus-per-node; 0: none)",
    "cpus_per_task": "CPU cores for each run (sbatch --cpus-per-task); local runs share the cores by it",
    "mem_gb": "memory per node for each run in GB (sbatch --mem)",
    "timeout_min": "wall-clock limit of each job in minutes (sbatch --time); a run past it checkpoints and is requeued",
    "array_parallelism": "at most this many runs of the job array at once (sbatch --array=…%%N)",
    "account": "account to charge (sbatch --account)",
    "qos": "quality of service (sbatch --qos)",
    "constraint": "node features required (sbatch --constraint, e.g. a100)",
    "max_num_timeout": "how many times a run that hit its time limit is requeued",
    "exclude": "nodes not to use (sbatch --exclude)",
}


# submitit has no public list of its Slurm parameters and their types; these two private names are the
# source of its own check (SlurmExecutor._valid_parameters) and of the sbatch lines it writes
# (_make_sbatch_string's annotated signature). Read here and nowhere else; a submitit that moves them
# fails loudly, naming them (tests/slurm/test_parameters.py).
SUBMITIT_PRIVATE = ("submitit.slurm.slurm._make_sbatch_string", "submitit.slurm.slurm.SlurmExecutor._valid_parameters")


def submitit_private():
    """(sbatch writer, valid-parameter list) from the installed submitit, or a clear error."""
    from submitit.slurm import slurm

    writer = getattr(slurm, "_make_sbatch_string", None)
    valid = getattr(getattr(slurm, "SlurmExecutor", None), "_valid_parameters", None)
    if not callable(writer) or not callable(valid):
        import submitit

        raise RuntimeError(f"submitit {submitit.__version__} no longer has {' and '.join(SUBMITIT_PRIVATE)}, which "
                           "seqbench reads its Slurm parameters from: pin the submitit seqbench was tested with, or "
                           "update slurm/parameters.py")
    return writer, valid


@cache
def slurm_parameters() -> dict[str, Any]:
    """name → annotation of every parameter submitit's SlurmExecutor accepts (its sbatch writer's
    signature, the source of its own list of valid parameters)."""
    writer, valid_parameters = submitit_private()
    hints = typing.get_type_hints(writer)
    valid = set(valid_parameters())
    found = {name: hints.get(name, Any) for name in inspect.signature(writer).parameters if name in valid}
    return {**found, "max_num_timeout": int}


def valid_names() -> list[str]:
    return sorted({*GENERIC, *(set(slurm_parameters()) - set(REPLACED))})


def executor_parameters(from_file: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The sweep's executor section with the command line's values on top, each name canonical
    (no `slurm_` prefix) and each value checked."""
    merged = {}
    for name, value in [*DEFAULTS.items(), *from_file.items(), *((k, v) for k, v in overrides.items() if v is not None)]:
        merged[name.removeprefix("slurm_") if name.removeprefix("slurm_") in slurm_parameters() else name] = value
    for name in merged:
        if name in REPLACED:
            instead = REPLACED[name]
            raise ValueError(f"executor parameter {name!r}: " + (f"use {instead!r} (submitit's shared name)" if instead else
                                                                  "seqbench names each job after its sweep"))
    unknown = sorted(set(merged) - set(valid_names()))
    if unknown:
        raise ValueError(f"unknown executor parameter(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid_names())}")
    for name, value in merged.items():
        check_value(name, value)
    if merged.get("gpus_per_node") == 0:
        merged.pop("gpus_per_node")
    return merged


def submitit_names(parameters: dict[str, Any]) -> dict[str, Any]:
    """Canonical names → AutoExecutor's (Slurm-only ones carry the `slurm_` prefix)."""
    return {(name if name in GENERIC else f"slurm_{name}"): value for name, value in parameters.items()}


def check_value(name: str, value: Any) -> None:
    kind = GENERIC.get(name) or slurm_parameters()[name]
    if not _matches(value, kind):
        raise ValueError(f"executor parameter {name} must be {_describe(kind)}, got {value!r}")
    if name in MINIMUM and isinstance(value, (int, float)) and not isinstance(value, bool) and value < MINIMUM[name]:
        raise ValueError(f"executor parameter {name} must be an integer ≥ {MINIMUM[name]}, got {value!r}")


def _matches(value: Any, kind: Any) -> bool:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return True
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return value is None or any(_matches(value, option) for option in args if option is not type(None))
    if origin in (list, collections.abc.Iterable):
        return isinstance(value, list) and all(_matches(item, args[0] if args else Any) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(key, str) for key in value)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str) and value != ""
    return isinstance(value, kind) if isinstance(kind, type) else True


def _describe(kind: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a non-empty string", bool: "true or false"}
    if kind in names:
        return names[kind]
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    origin = typing.get_origin(kind)
    if origin in (list, collections.abc.Iterable):
        return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin is dict:
        return "a table of name = value"
    if args:
        return " or ".join(_describe(a) for a in args)
    return str(kind)


def parse_assignment(text: str) -> tuple[str, Any]:
    """'--slurm KEY=VALUE': the value is read as TOML (lists, tables, numbers), else taken as text."""
    import tomllib

    if "=" not in text:
        raise ValueError(f"--slurm {text!r}: expected KEY=VALUE, e.g. --slurm exclude=node3 or --slurm 'setup=[\"module load cuda\"]'")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        return key, tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return key, raw
