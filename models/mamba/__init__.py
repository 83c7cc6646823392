"""Mamba: the layer (layer.py), its scan per mode (ops.py), the compiled CPU loop (compiled.py and
cpu_kernel.cpp) and the float64 yardstick (reference.py) — laid out like models/gateloop/."""
from seqbench.models.mamba.layer import Mamba
from seqbench.models.mamba.ops import MODES, selective_scan
from seqbench.models.mamba.reference import selective_scan_reference

__all__ = ["MODES", "Mamba", "selective_scan", "selective_scan_reference"]
