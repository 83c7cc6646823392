"""Length generalisation plots (analysis/length_plots.py) for every task family that measures it:
state tracking's final state per word length, MQAR per test length, bits per byte per position."""
import matplotlib.colors
import pandas as pd
import pytest

from seqbench.analysis.length_plots import length_generalisation_figure, length_table, plot_length_generalisation
from seqbench.analysis.style import length_slices, mixer_colours


def test_length_generalisation_draws_a_line_per_mixer_with_the_training_length_and_chance(tmp_path):
    """A state-tracking sweep's plot: x = the test lengths, one line per mixer in its fixed colour, the
    longest training word and chance drawn, the protocol and the seeds in the title."""

    rows = []
    for name, slope in (("gateloop", 0.7), ("gated_deltanet", 0.2)):
        for seed in range(3):
            row = {"run_id": f"{name}{seed}", "model.name": name, "seed": seed, "status": "completed", "task.name": "modular_arithmetic",
                   "task.options.modulus": 5, "task.options.max_length": 40, "final_accuracy": 0.5, "validation_accuracy": 0.5}
            row.update({f"final_accuracy/end/L{n}": 1 - slope * n / 256 + seed / 100 for n in (40, 80, 160, 256)})
            rows.append(row)
    runs = pd.DataFrame(rows)
    axis = length_generalisation_figure(runs).axes[0]
    assert [int(t) for t in axis.get_xticks()] == [40, 80, 160, 256]
    assert any(list(line.get_xdata()) == [40, 40] and line.get_linestyle() == "--" for line in axis.get_lines())  # training length
    assert any(list(line.get_ydata()) == [0.2, 0.2] for line in axis.get_lines())  # chance = 1/5
    means = {matplotlib.colors.to_hex(line.get_color()): list(line.get_ydata()) for line in axis.get_lines() if len(line.get_xdata()) == 4}
    colours = {name: matplotlib.colors.to_hex(colour) for name, colour in mixer_colours(["gateloop", "gated_deltanet"]).items()}
    assert means[colours["gated_deltanet"]] == pytest.approx([1 - 0.2 * n / 256 + 0.01 for n in (40, 80, 160, 256)])
    title = axis.get_title().replace("\n", " ")
    assert "Length generalisation on modular_arithmetic" in title and "over 3 seeds" in title
    assert mixer_colours(["gateloop"])["gateloop"] == mixer_colours(["gateloop", "rwkv7", "mine:Mixer"])["gateloop"]
    assert plot_length_generalisation(runs, tmp_path / "length.png").exists()


def test_mqar_and_bytes_slices_are_read_as_lengths_and_drawn_with_the_training_length():
    rows = []
    for name in ("gateloop", "softmax_attention"):
        for seed in range(3):
            rows.append({"run_id": f"{name}{seed}", "model.name": name, "seed": seed, "status": "completed", "task.name": "bytes",
                         "task.options.seq_len": 128, "final_bpc": 2.0, "validation_bpc": 2.0,
                         **{f"final_bpc/to{n}": 2.0 + (0.5 if name == "gateloop" else 0.0) * n / 1024 for n in (128, 256, 512, 1024)}})
    runs = pd.DataFrame(rows)
    long, kind, _ = length_table(runs)
    assert kind["metric"] == "final_bpc" and sorted(set(long["length"])) == [128, 256, 512, 1024]
    axis = length_generalisation_figure(runs).axes[0]
    assert "lower is better" in axis.get_ylabel() and any(list(line.get_xdata()) == [128, 128] for line in axis.get_lines())
    mqar = {"final_accuracy/L64_N4": 0.9, "final_accuracy/L256_N4": 0.3}
    assert length_slices(mqar)[0] == {"final_accuracy/L64_N4": 64, "final_accuracy/L256_N4": 256}
    assert length_slices({"final_accuracy/L64_N4": 0.9})[0] == {}  # every MQAR run has its own length's slice: not a sweep of lengths
