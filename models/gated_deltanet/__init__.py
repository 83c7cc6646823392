"""Gated DeltaNet and DeltaNet: the layer (layer.py), the delta rule in every mode (ops.py) and its
float64 yardstick (reference.py)."""
from seqbench.models.gated_deltanet import layer  # noqa: F401  (registers "gated_deltanet")
