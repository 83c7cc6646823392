"""The compiled kernels' builds (models/cpp_build.py): one per source and per CPU instruction set
(-march=native), and builds that never hang: a killed build, two at once, a failed one, no compiler."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqbench.models import cpp_build
from seqbench.models.gateloop import compiled
from seqbench.models.mamba import compiled as mamba_compiled


def test_build_name_names_the_kernel_and_changes_with_its_source(tmp_path):
    assert cpp_build.build_name(compiled.SOURCE).startswith("seqbench_gateloop_cpu_kernel_")
    assert cpp_build.build_name(mamba_compiled.SOURCE).startswith("seqbench_mamba_cpu_kernel_")
    copy = tmp_path / "gateloop" / "cpu_kernel.cpp"
    copy.parent.mkdir()
    copy.write_text(compiled.SOURCE.read_text())
    assert cpp_build.build_name(copy) == cpp_build.build_name(compiled.SOURCE)  # the text decides, not the path
    copy.write_text(compiled.SOURCE.read_text() + "\n// an edit\n")
    assert cpp_build.build_name(copy) != cpp_build.build_name(compiled.SOURCE)


def test_other_compiler_flags_get_their_own_build(monkeypatch):
    here = cpp_build.build_name(compiled.SOURCE)
    monkeypatch.setattr(cpp_build, "CFLAGS", ("-O2",))
    assert cpp_build.build_name(compiled.SOURCE) != here


def test_cpus_with_other_instruction_sets_get_their_own_build(monkeypatch):
    """Nodes sharing torch's build cache must not load a build made for another CPU (illegal instruction)."""
    here = cpp_build.build_name(compiled.SOURCE)
    monkeypatch.setattr(cpp_build, "cpu_instruction_sets", lambda: "fpu sse sse2 avx avx2")
    assert cpp_build.build_name(compiled.SOURCE) != here


def test_instruction_sets_are_read_from_this_cpu():
    flags = cpp_build.cpu_instruction_sets()
    if Path("/proc/cpuinfo").exists():
        assert flags and flags == " ".join(sorted(flags.split()))


@pytest.mark.parametrize("tail, interrupted", [
    ("c++: fatal error: Terminated signal terminated program cc1plus\ncompilation terminated.\n"
     "ninja: build stopped: subcommand failed.\n", True),  # SIGTERM reached cc1plus first: ninja exits 1
    ("ninja: build stopped: interrupted by user.\n", True),
    ("FAILED: [code=143] cpu_kernel.o\nninja: build stopped: subcommand failed.\n", True),
    ("FAILED: [code=1] cpu_kernel.o\ncpu_kernel.cpp:3:1: error: 'x' was not declared in this scope\n"
     "ninja: build stopped: subcommand failed.\n", False),  # the source's fault: recorded as failed
])
def test_a_compile_ended_by_a_signal_is_told_apart_from_a_compile_error_by_its_log(tmp_path, tail, interrupted):
    """Ninja's exit status does not always show the signal (measured: 1 when the compiler died first)."""
    log = tmp_path / "build.log"
    log.write_text("[1/2] c++ -MMD -MF cpu_kernel.o.d -c cpu_kernel.cpp -o cpu_kernel.o\n" + tail)
    assert (cpp_build._signal_in_log(log) is not None) == interrupted
    assert cpp_build._signal_in_log(tmp_path / "absent.log") is None


# --- builds that never hang (fault tier: each compiles a tiny extension, ~30 s) -------------------
TINY_KERNEL = """
#include <torch/extension.h>
torch::Tensor twice(torch::Tensor x) { return x * 2; }
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("twice", &twice); }
"""
BUILD = ("import sys, time; from pathlib import Path; from seqbench.models import cpp_build; "
         "t = time.monotonic(); module, reason = cpp_build.build(Path(sys.argv[1])); "
         "print('built' if module is not None and module.twice(__import__('torch').ones(2)).sum().item() == 4 else reason, "
         "round(time.monotonic() - t, 1), flush=True)")


def tiny_kernel(tmp_path, text=TINY_KERNEL):
    source = tmp_path / "tiny" / "cpu_kernel.cpp"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(text)
    return source


def build_process(source, build_root, **env_changes):
    env = {**os.environ, "SEQBENCH_BUILD_DIR": str(build_root), **env_changes}
    return subprocess.Popen([sys.executable, "-c", BUILD, str(source)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def compiling(root, source) -> Path:
    """The build folder, once its build holds the lock and the compiler has run for a moment."""
    folder = root / cpp_build.build_name(source)
    deadline = time.monotonic() + 120
    while not ((folder / "build.lock").exists() and (folder / "build.ninja").exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)
    return folder


@pytest.mark.faults
def test_a_build_killed_midway_leaves_no_lock_that_blocks_the_next(tmp_path):
    """SIGKILL while compiling (a preempted job): the next process builds within a bounded time."""
    source, root = tiny_kernel(tmp_path), tmp_path / "builds"
    first = build_process(source, root)
    folder = compiling(root, source)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert (folder / "build.lock").exists()  # left behind, as a killed job leaves it
    second = build_process(source, root)
    out, _ = second.communicate(timeout=300)
    assert out.split()[0] == "built", out
    assert not (folder / "build.lock").exists() and not (folder / "lock").exists()


@pytest.mark.faults
def test_two_processes_building_at_once_both_get_the_kernel_and_it_is_compiled_once(tmp_path):
    source, root = tiny_kernel(tmp_path), tmp_path / "builds"
    processes = [build_process(source, root) for _ in range(2)]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [out.split()[0] for out in outputs] == ["built", "built"], outputs
    # the one that waited found the other's build done: its (last) log is ninja's "no work to do"
    assert "ninja: no work to do" in (root / cpp_build.build_name(source) / "build.log").read_text()


@pytest.mark.faults
def test_a_failed_build_is_recorded_with_its_log_and_later_processes_fall_back_at_once(tmp_path):
    source, root = tiny_kernel(tmp_path, TINY_KERNEL.replace("x * 2", "x * * 2")), tmp_path / "builds"
    first = build_process(source, root)
    out, _ = first.communicate(timeout=300)
    folder = root / cpp_build.build_name(source)
    assert "build failed" in out and f"compiler log: {folder / 'build.log'}" in out
    assert "error" in (folder / "build.log").read_text()  # the compiler's own words are kept
    again, _ = build_process(source, root).communicate(timeout=60)
    assert "build --force" in again and float(again.split()[-1]) < 2.0  # no second compile


def test_no_compiler_on_path_is_one_clear_reason(tmp_path):
    source, root = tiny_kernel(tmp_path), tmp_path / "builds"
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python")
    out, _ = build_process(source, root, PATH=str(bare), CXX="").communicate(timeout=120)
    assert out.startswith("no C++ compiler (c++/g++) on PATH — using PyTorch"), out
    assert "compiler not compatible" not in out and "ninja" not in out


@pytest.mark.faults
def test_a_build_interrupted_by_sigterm_is_not_recorded_as_failed(tmp_path):
    """SIGTERM to the building job's process group (a timeout, a preemption) while ninja compiles — the
    job itself records the signal and goes on, as a run's stop handler does; ninja dies of it: no
    failed.json, so the next process builds instead of falling back to PyTorch for good."""
    source, root = tiny_kernel(tmp_path), tmp_path / "builds"
    env = {**os.environ, "SEQBENCH_BUILD_DIR": str(root)}
    first = subprocess.Popen([sys.executable, "-c", "import signal; signal.signal(signal.SIGTERM, lambda *a: None); " + BUILD, str(source)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    folder = compiling(root, source)
    os.killpg(first.pid, signal.SIGTERM)
    interrupted, _ = first.communicate(timeout=120)
    assert "build interrupted by a signal" in interrupted and "not recorded as failed" in interrupted, interrupted
    assert not (folder / "failed.json").exists()
    out, _ = build_process(source, root).communicate(timeout=300)
    assert out.split()[0] == "built", out


@pytest.mark.faults
def test_a_read_only_build_folder_loads_a_complete_build_and_otherwise_says_why(tmp_path):
    """A build root on a read-only mount (a shared cache mounted ro on the nodes): its complete build is
    loaded without the lock; an empty one gives the reason and PyTorch, never a failed run."""
    source, root = tiny_kernel(tmp_path), tmp_path / "builds"
    out, _ = build_process(source, root).communicate(timeout=300)
    assert out.split()[0] == "built", out
    (tmp_path / "empty").mkdir()
    mounts = []
    try:
        for name, target in (("builds", tmp_path / "ro-builds"), ("empty", tmp_path / "ro-empty")):
            target.mkdir()
            done = subprocess.run(["mount", "--bind", str(tmp_path / name), str(target)], capture_output=True)
            if done.returncode:
                pytest.skip(f"cannot bind-mount here ({done.stderr.decode().strip()}); needs root")
            mounts.append(target)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        out, _ = build_process(source, tmp_path / "ro-builds").communicate(timeout=120)
        assert out.split()[0] == "built", out
        out, _ = build_process(source, tmp_path / "ro-empty").communicate(timeout=120)
        assert "cannot be written and holds no complete build: using PyTorch" in out, out
    finally:
        for target in reversed(mounts):
            subprocess.run(["umount", str(target)])
