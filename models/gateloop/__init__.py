from models.gateloop.layer import GateLoop
from models.gateloop.ops import MODES, gateloop
from models.gateloop.reference import gateloop_reference

__all__ = ["GateLoop", "MODES", "gateloop", "gateloop_reference"]
