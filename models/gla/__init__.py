"""Gated Linear Attention: the layer (layer.py), the recurrence in every mode (ops.py) and its float64
yardstick (reference.py); Mamba-2's SSD runs on the same op with one gate per head."""
from seqbench.models.gla import layer  # noqa: F401  (registers "gla")
