"""The sweep and speed plots (analysis/plots.py, speed_plots.py): what a figure shows — a colour per
model, the split in the axis label, the task's chance line, intervals inside the metric's range —
read back from the figure itself, and every plot written as an image."""
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from seqbench.analysis.plots import final_grid, plot_curves, plot_final, plot_mad_scores, plot_sweep
from seqbench.analysis.speed_plots import plot_gateloop_op, plot_speed
from seqbench.analysis.style import mixer_colours


def runs_and_curves():
    runs = pd.DataFrame([{"run_id": f"{m}{s}", "model.name": m, "seed": s, "status": "completed",
                          "final_accuracy": 0.5 + 0.1 * s + (0.2 if m == "a" else 0)} for m in ("a", "b") for s in range(3)])
    curves = pd.DataFrame([{"run_id": r, "step": step, "split": split, "metric": metric, "value": 1.0 / step}
                           for r in runs["run_id"] for step in range(10, 60, 10)
                           for split, metric in (("train", "loss"), ("validation", "accuracy"))])
    return runs, curves


def assert_image(path):
    with Image.open(path) as image:
        assert image.width > 100 and image.height > 100


def demo_like_runs() -> pd.DataFrame:
    """Three models, an lr set per model in the sweep (zipped), 3 seeds, MQAR on 64 tokens; RetNet
    and GateLoop share lr 1e-2, and softmax attention is so close to 1 that its t-interval passes it."""
    accuracy = {"gateloop": [0.15, 0.18, 0.21], "softmax_attention": [0.90, 0.97, 0.99], "retnet": [0.25, 0.27, 0.28]}
    lr = {"gateloop": 1e-2, "softmax_attention": 3e-3, "retnet": 1e-2}
    return pd.DataFrame([{"run_id": f"{m}{s}", "model.name": m, "optimizer.lr": lr[m], "seed": s, "status": "completed",
                          "final_split": "test", "final_accuracy": value, "validation_accuracy": value,
                          "task.name": "mqar", "task.options.vocab_size": 64, "task.options.num_pairs": 4}
                         for m, values in accuracy.items() for s, value in enumerate(values)])


def test_the_final_plot_colours_by_model_names_the_split_draws_chance_and_clips_intervals():
    grid = final_grid(demo_like_runs())
    axis = grid.axes.flat[0]
    assert axis.get_ylabel() == "test accuracy"
    markers = [line for line in axis.lines if line.get_marker() == "D"]
    assert len({matplotlib.colors.to_hex(line.get_color()) for line in markers}) == 3  # one colour per model, not per lr
    chance = [line for line in axis.lines if line.get_linestyle() == ":"]
    assert len(chance) == 1 and chance[0].get_ydata()[0] == 1 / 32
    intervals = [line.get_ydata() for line in axis.lines if line.get_marker() == "None" and line.get_linestyle() == "-"]
    tops = [np.nanmax(y) for y in intervals if not np.isnan(y).all()]
    assert len(tops) == 3 and max(tops) == 1.0  # softmax's interval (raw: up to 1.07) clipped at 1
    plt.close(grid.figure)


def test_plot_final_and_curves_and_sweep(tmp_path):
    runs, curves = runs_and_curves()
    assert_image(plot_final(runs, tmp_path / "final.png"))
    assert_image(plot_curves(runs, curves, tmp_path / "curves.png"))
    written = plot_sweep(runs, curves, tmp_path / "plots")
    assert [p.name for p in written] == ["final.png", "curves.png"]


def test_speed_plots(tmp_path):
    rows = [{"model": m, "mode": mode, "backend": "torch", "length": l, "measure": measure, "status": "ok",
             "median_ms": l * factor, "peak_memory_bytes": 1000.0 * l}
            for m, mode, factor in (("softmax_attention", "parallel", 0.01), ("gateloop", "recurrent", 0.02))
            for l in (256, 1024, 4096) for measure in ("forward", "forward_backward", "step")]
    assert all(p.exists() for p in plot_speed(pd.DataFrame(rows), tmp_path))
    op = pd.DataFrame([{"implementation": name, "length": l, "status": "ok", "forward_ms": l * 1e-3, "forward_backward_ms": l * 3e-3,
                        "traffic_floor_ms": l * 5e-4} for name in ("x", "y") for l in (256, 1024)])
    assert_image(plot_gateloop_op(op, tmp_path))


def test_the_speed_plot_wraps_ten_mixers_in_their_own_colours_with_a_style_per_mode(tmp_path, monkeypatch):
    from seqbench import models
    from seqbench.analysis.style import mixer_colours

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to read its artists
    names = models.available()[:10]
    rows = [{"model": m, "mode": mode, "backend": "torch", "length": l, "measure": "forward_backward", "status": "ok",
             "median_ms": l * factor, "peak_memory_bytes": 1000.0 * l}
            for m in names for mode, factor in (("chunked", 0.01), ("recurrent", 0.02)) for l in (256, 1024, 4096)]
    [path] = plot_speed(pd.DataFrame(rows), tmp_path)
    with Image.open(path) as image:
        assert image.width <= 1600  # readable at the size written: ten mixers in two blocks of five
    [figure] = figures
    colours = mixer_colours(names)
    titled = {ax.get_title(): ax for ax in figure.axes if ax.get_title()}
    assert sorted(titled) == sorted(names)
    for name, ax in titled.items():
        own = [line for line in ax.lines if line.get_label() != "softmax (parallel)"]
        assert {matplotlib.colors.to_hex(line.get_color()) for line in own} == {matplotlib.colors.to_hex(colours[name])}
        assert len({line.get_linestyle() for line in own}) == 2  # a style per mode


def test_accuracy_against_state_size_has_a_panel_per_cell_and_a_line_per_mixer(tmp_path):
    from seqbench.analysis.plots import ZOOLOGY_CELL, state_size_grid

    rows = [{"run_id": f"{m}{d}{l}{lr}", "model.name": m, "model.d_model": d, "optimizer.lr": lr, "seed": 0, "status": "completed",
             "task.name": "mqar", ZOOLOGY_CELL[0]: l, ZOOLOGY_CELL[1]: l // 16, "state_size": d * (8 if m == "a" else 1),
             "validation_accuracy": 0.5 + lr, "final_accuracy": (0.2 if lr == 0.1 else 0.9) + d / 1000}
            for m in ("a", "b") for d in (64, 128) for l in (64, 128) for lr in (0.01, 0.1)]
    runs = pd.DataFrame(rows)
    grid = state_size_grid(runs)
    axes = list(grid.axes.flat)
    assert [axis.get_title() for axis in axes] == ["L=64, N=4", "L=128, N=8"]  # human titles, no field names
    for axis in axes:
        lines = [line for line in axis.lines if len(line.get_xdata()) == 2]
        assert len(lines) == 2  # one per mixer, through its two widths
        # lr 0.1 wins on validation, so its (lower) test accuracy is what is drawn
        assert sorted(round(y, 3) for line in lines for y in line.get_ydata()) == [0.264, 0.264, 0.328, 0.328]
    plt.close(grid.figure)
    written = plot_sweep(runs, pd.DataFrame(columns=["run_id", "step", "split", "metric", "value"]), tmp_path)
    assert [p.name for p in written] == ["final.png", "curves.png", "accuracy_vs_state_size.png"]
    at_chance = runs.assign(**{"task.options.vocab_size": 512, "final_accuracy": 0.004})  # the quick budget's picture
    grid = state_size_grid(at_chance)
    axis = grid.axes.flat[0]
    assert any(list(line.get_ydata()) == [1 / 256, 1 / 256] for line in axis.lines)  # chance drawn
    assert "every mixer within 0.05 of chance" in " ".join(grid.figure._suptitle.get_text().split())
    colours = {matplotlib.colors.to_hex(line.get_color()) for line in axis.lines if line.get_linestyle() != ":"}
    assert colours == {matplotlib.colors.to_hex(c) for c in mixer_colours(["a", "b"]).values()}
    plt.close(grid.figure)


def test_a_zip_of_several_fields_is_one_axis_of_the_final_plot():
    """The P2 pilot's shape: an arm axis × three settings zipped over four task fields (five varying
    columns): the zipped fields share one channel, so the plot is drawn, a point per arm and setting."""
    settings = [(256, 64, 16, "[1, 8]"), (512, 128, 16, "[1, 16]"), (512, 128, 64, "[1, 16]")]
    runs = pd.DataFrame([{"run_id": f"{arm}{i}", "model.name": "gateloop", "model.options.state_transition": arm,
                          "task.options.seq_len": L, "task.options.max_horizon": h, "task.options.num_symbols": n,
                          "task.options.bucket_edges": edges, "seed": 100, "status": "completed", "final_accuracy": 0.5 + i / 10}
                         for arm in ("data", "fixed") for i, (L, h, n, edges) in enumerate(settings)])
    grid = final_grid(runs)
    legend = grid.legend.get_title().get_text()
    assert legend == "seq_len · max_horizon · bucket_edges"  # the three fields that only change together
    assert len(grid.axes.flat) == 2  # num_symbols (16, 64) is not one-to-one with seq_len: its own channel
    plt.close(grid.figure)


def test_one_style_across_plot_kinds_mixer_colours_chosen_lr_and_missing_cells(tmp_path):
    """The final plot colours each mixer as every other plot does, names its chosen lrs, titles facets
    by their short field name; the MAD heatmap marks a score that does not exist as missing."""
    rows = [{"run_id": f"{m}{l}{n}{lr}{s}", "model.name": m, "task.name": "mqar", "task.options.seq_len": l,
             "task.options.num_pairs": n, "optimizer.lr": lr, "seed": s, "status": "completed",
             "validation_accuracy": 0.5 + lr, "final_accuracy": 0.5 + lr + s / 100}
            for m in ("gateloop", "rwkv7") for l in (64, 128) for n in (4, 8) for lr in (0.01, 0.03) for s in range(3)]
    grid = final_grid(pd.DataFrame(rows))
    assert sorted(axis.get_title() for axis in grid.axes.flat) == ["num_pairs = 4", "num_pairs = 8"]
    assert grid.axes.flat[0].get_xlabel() == "seq_len"  # the mixer is the colour, the other axes x and facets
    markers = [line for line in grid.axes.flat[0].lines if line.get_marker() == "D"]
    drawn = {matplotlib.colors.to_hex(line.get_color()) for line in markers}
    assert drawn == {matplotlib.colors.to_hex(c) for c in mixer_colours(["gateloop", "rwkv7"]).values()}
    assert "chosen lr — gateloop: 0.03; rwkv7: 0.03" in " ".join(grid.figure._suptitle.get_text().split())
    plt.close(grid.figure)
    scores = pd.DataFrame({"model": ["gateloop", "mamba"], "memorization": [0.9, float("nan")], "MAD score": [0.9, float("nan")]})
    path = plot_mad_scores(scores, tmp_path / "mad.png")
    assert path.exists()


def test_an_lr_set_per_model_in_the_sweep_is_named_under_the_title():
    """The demo's protocol: each model at the lr its tuning chose, set in the sweep file."""
    rows = [{"run_id": f"{m}{s}", "model.name": m, "optimizer.lr": lr, "seed": s, "status": "completed", "task.name": "mqar",
             "final_accuracy": 0.5 + s / 100} for m, lr in (("gateloop", 0.01), ("retnet", 0.003)) for s in range(3)]
    grid = final_grid(pd.DataFrame(rows))
    title = " ".join(grid.figure._suptitle.get_text().split())
    assert "one lr per configuration, set in the sweep" in title and "lr — gateloop: 0.01; retnet: 0.003" in title
    plt.close(grid.figure)
