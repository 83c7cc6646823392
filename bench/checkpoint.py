"""What a checkpoint must hold before a single weight is loaded from it: the format, the run it belongs
to and every field of the right type. A checkpoint is data (loaded with `weights_only`); one that
fails these checks is set aside and the run restarts from step 0 (bench/runner.py).
"""
from __future__ import annotations

CHECKPOINT_FORMAT = 2  # bump when the fields change: an older checkpoint is then refused, not misread
CHECKPOINT_FIELDS = {"format": int, "run_id": str, "step": int, "stopped_early": bool, "resumed_from": list,
                     "model": dict, "optimizer": dict, "scheduler": dict}


def check_checkpoint(state, run_id: str) -> None:
    if not isinstance(state, dict):
        raise ValueError(f"a checkpoint is a dict, found {type(state).__name__}")
    wrong = [key for key, kind in CHECKPOINT_FIELDS.items() if not isinstance(state.get(key), kind)]
    if wrong:
        raise ValueError(f"checkpoint fields missing or of the wrong type: {', '.join(wrong)}")
    if state["format"] != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint format {state['format']}, expected {CHECKPOINT_FORMAT}")
    if state["run_id"] != run_id:
        raise ValueError(f"checkpoint of run {state['run_id']!r}, not {run_id!r}")
    if state["step"] < 0:
        raise ValueError(f"negative step {state['step']}")
