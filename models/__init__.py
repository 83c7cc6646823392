"""Sequence mixers behind one interface, a registry, and the language-model backbone."""
from models import gateloop, linear_attention, mamba, retnet, s5, softmax_attention  # noqa: F401  (registers)
from models.backbone import LanguageModel
from models.base import Mixer
from models.registry import available, build, describe, options

__all__ = ["LanguageModel", "Mixer", "available", "build", "describe", "options"]
