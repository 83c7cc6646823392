"""Sequence mixers behind one interface, a registry, and the language-model backbone."""
from models import gateloop  # noqa: F401  (registers the mixers)
from models.backbone import LanguageModel
from models.base import Mixer
from models.registry import available, build, describe, options

__all__ = ["LanguageModel", "Mixer", "available", "build", "describe", "options"]
