"""Sequence mixers behind one interface, a registry, and the language-model backbone."""
from seqbench.models import gateloop, linear_attention, mamba, retnet, s5, softmax_attention  # noqa: F401  (registers)
from seqbench.models.backbone import LanguageModel, LayerPlan, plan_layers
from seqbench.models.base import Mixer
from seqbench.models.registry import available, build, describe, options

__all__ = ["LanguageModel", "LayerPlan", "Mixer", "plan_layers", "available", "build", "describe", "options"]
