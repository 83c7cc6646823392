"""The command's arguments (seqbench/arguments.py): every subcommand the parser knows runs one
library call (seqbench/cli.py), every option's help says its default, ids after options are taken."""
import argparse

from seqbench.arguments import build_parser
from seqbench.cli import COMMANDS


def test_every_subcommand_has_exactly_one_command_behind_it():
    parser = build_parser()
    subcommands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    assert set(subcommands.choices) == set(COMMANDS)


def test_options_parse_to_their_defaults_and_types():
    args = build_parser().parse_args(["compare", "gateloop", "--dry-run", "--parallel", "2", "--mem-gb", "8"])
    assert (args.command, args.mixer, args.suite, args.budget, args.dry_run, args.parallel, args.mem_gb) == \
        ("compare", "gateloop", "all", "cpu", True, 2, 8.0)
    assert build_parser().parse_args(["findings", "run", "U3"]).scale == "cpu"
