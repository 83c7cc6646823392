"""The compiled kernels' build names: one per source and per CPU instruction set (-march=native)."""
from pathlib import Path

from seqbench.models import cpp_build
from seqbench.models.gateloop import compiled


def test_build_name_is_stable_and_names_the_source():
    assert cpp_build.build_name(compiled.SOURCE) == cpp_build.build_name(compiled.SOURCE)
    assert cpp_build.build_name(compiled.SOURCE).startswith("seqbench_cpu_kernel_")


def test_cpus_with_other_instruction_sets_get_their_own_build(monkeypatch):
    """Nodes sharing torch's build cache must not load a build made for another CPU (illegal instruction)."""
    here = cpp_build.build_name(compiled.SOURCE)
    monkeypatch.setattr(cpp_build, "cpu_instruction_sets", lambda: "fpu sse sse2 avx avx2")
    assert cpp_build.build_name(compiled.SOURCE) != here


def test_instruction_sets_are_read_from_this_cpu():
    flags = cpp_build.cpu_instruction_sets()
    if Path("/proc/cpuinfo").exists():
        assert flags and flags == " ".join(sorted(flags.split()))
