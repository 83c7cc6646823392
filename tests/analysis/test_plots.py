"""Each plot function writes an image from a small table (what it draws is looked at by people;
that it runs on the tables collect produces is what a test can hold)."""
import pandas as pd
from PIL import Image

from seqbench.analysis.plots import plot_curves, plot_final, plot_sweep
from seqbench.analysis.speed_plots import plot_gateloop_op, plot_speed


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
