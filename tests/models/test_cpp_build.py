"""The compiled kernels' build names: one per source and per CPU instruction set (-march=native)."""
from pathlib import Path

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
