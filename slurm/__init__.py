"""Sweeps and executors: local processes, in-process debugging, Slurm job arrays through submitit."""
