"""Configs, the runner, the results store and the command line."""
