"""Mamba-2: the layer (layer.py) on the gated linear-attention op of models/gla with one gate per
head, and its float64 yardstick (reference.py)."""
from seqbench.models.mamba2 import layer  # noqa: F401  (registers "mamba2")
