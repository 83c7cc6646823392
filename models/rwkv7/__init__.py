"""RWKV-7's time mixing: the layer (layer.py), the diagonal-plus-low-rank rule in every mode (ops.py)
and its float64 yardstick (reference.py)."""
from seqbench.models.rwkv7 import layer  # noqa: F401  (registers "rwkv7")
