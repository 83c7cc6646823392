"""Sequence mixers behind one interface, a registry, and the language-model backbone."""
from seqbench.models import gated_deltanet, gateloop, gla, linear_attention, mamba, mamba2, retnet, rwkv7, s5, softmax_attention  # noqa: F401  (registers)
from seqbench.models.backbone import LanguageModel, LayerPlan, plan_layers
from seqbench.models.base import Mixer
from seqbench.models.registry import available, build, describe, options

__all__ = ["LanguageModel", "LayerPlan", "Mixer", "available", "build", "compiled_kernels", "describe", "options", "plan_layers"]


def compiled_kernels():
    """name → C++ source of every compiled CPU kernel (what `seqbench build` prebuilds)."""
    from seqbench.models.gateloop import compiled as gateloop_compiled
    from seqbench.models.mamba import compiled as mamba_compiled

    return {"gateloop": gateloop_compiled.SOURCE, "mamba": mamba_compiled.SOURCE}
