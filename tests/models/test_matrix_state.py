"""What the matrix-state mixers share (models/matrix_state.py): their option checks, each naming the
mixer, the option and the value."""
import pytest

from seqbench.models.matrix_state import head_width, positive_int


def test_option_checks_name_the_mixer_the_option_and_the_value():
    assert positive_int("gla", "heads", 4) == 4
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=f"gla: heads must be an integer ≥ 1, got {bad!r}"):
            positive_int("gla", "heads", bad)
    assert head_width("gla", "expand_v", 64, 1.0, 4) * 4 == 64
    with pytest.raises(ValueError, match="gla: expand_v must be a positive number, got -1"):
        head_width("gla", "expand_v", 64, -1, 4)
