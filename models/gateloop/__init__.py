from seqbench.models.gateloop.layer import GateLoop
from seqbench.models.gateloop.ops import MODES, gateloop
from seqbench.models.gateloop.reference import gateloop_reference

__all__ = ["GateLoop", "MODES", "gateloop", "gateloop_reference"]
