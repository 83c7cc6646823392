"""The loop over lengths every benchmark shares (bench/timing.py): prediction, capping, peak memory."""
import pytest
import torch

from seqbench.bench import timing

CPU = torch.device("cpu")


def test_prediction_is_a_clamped_power_law_and_quadratic_from_one_point():
    assert timing.predict([], 64) is None
    assert timing.predict([(16, 4.0)], 32) == pytest.approx(16.0)  # one point: quadratic
    assert timing.predict([(16, 4.0), (32, 8.0)], 64) == pytest.approx(16.0)  # linear fit
    assert timing.predict([(16, 1.0), (32, 64.0)], 64) == pytest.approx(256.0)  # exponent 6 clamped to 2
    assert timing.predict([(16, 4.0), (32, 4.0)], 64) == pytest.approx(8.0)  # exponent 0 clamped to 1


def test_a_case_predicted_over_budget_and_every_longer_one_are_capped():
    measured = []

    def measure(length, memory):
        measured.append(length)
        return [{"length": length, "status": "ok"}], float(length), None  # 1 ms per position, linear

    emitted = []
    rows = timing.over_lengths([10, 20, 40, 80, 160], measure, device=CPU, calls=10, time_budget_s=0.5,
                               capped_row=lambda length, status, reason: {"length": length, "status": status, "why": reason},
                               emit=emitted.append)
    # 10 calls: 40 positions predicted at 40 ms × 10 = 0.4 s (runs), 80 at 0.8 s (capped), and 160 stays capped
    assert measured == [10, 20, 40] and [row["status"] for row in rows] == ["ok"] * 3 + ["capped_time"] * 2
    assert emitted == rows and "predicted 0.1 s per call" in rows[3]["why"]


def test_memory_over_budget_caps_first():
    rows = timing.over_lengths([8, 16], lambda length, memory: ([{"status": "ok"}], 0.001, 2.0**30), device=CPU, calls=1,
                               time_budget_s=60, memory_budget_bytes=2 * 2**30,
                               capped_row=lambda length, status, reason: {"status": status})
    assert [row["status"] for row in rows] == ["ok", "capped_memory"]  # 1 GiB at 8 → 4 GiB predicted at 16


def test_peak_memory_sees_a_cases_allocation():
    memory = timing.PeakMemory(CPU)
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    assert memory.rise_bytes() >= 60 * 2**20 and memory.peak_bytes() >= memory.rise_bytes()
    del block


def test_a_runs_peak_memory_is_the_resident_high_water_mark_the_benchmarks_read():
    """One measure of peak memory: a run's summary and a benchmark case read the same VmHWM."""
    import torch

    from seqbench.bench.timing import current_rss_bytes, peak_memory, peak_rss_bytes

    held = torch.ones(8 * 2**20, dtype=torch.uint8)  # 8 MiB touched
    held.add_(1)
    peak = peak_memory(torch.device("cpu"))
    assert peak["peak_memory_kind"] == "cpu_max_rss"
    assert current_rss_bytes() <= peak["peak_memory_bytes"] <= peak_rss_bytes()
    del held
