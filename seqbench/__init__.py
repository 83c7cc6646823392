"""seqbench: a benchmarking and ablation harness for sequence mixers.

The repository's top-level folders are the subpackages: `models/` is `seqbench.models`, `tasks/`
`seqbench.tasks`, `bench/` `seqbench.bench`, `slurm/` `seqbench.slurm`, `analysis/`
`seqbench.analysis` (pyproject.toml maps them). Imports flow one way:
models ← tasks ← bench ← slurm | analysis ← cli.
"""
__version__ = "0.4.0"
