"""The findings as records — data, written before any run: each claim, its source, the probes
(sweeps) that decide it, its rules and the notes that say why those rules (analysis/findings/finding.py
says what a record means). A record's arms and rules fix its runs' ids: editing one starts other runs.
"""
from __future__ import annotations

import copy
from typing import Any

from seqbench.analysis.findings.finding import Arm, Finding, Probe
from seqbench.analysis.findings.scales import HORIZON_BASE, LM_BASE, MQAR_BASE, SPEED_BASE, STATE_BASE
from seqbench.analysis.findings.verdicts import Better, Crossover, Monotone, Ratio, Similar

GATELOOP = {"model.name": "gateloop"}
ATTENTION = {"model.name": "softmax_attention"}


def _lm(name: str, *arms: Arm, select_lr: bool = True) -> Probe:
    """A language-modelling probe: every arm tuned on the scale's lr grid (ablations included: a
    different architecture has a different optimal lr)."""
    return Probe(name=name, base=None, arms=arms, select_lr=select_lr)


def _long_run(name: str, lr_from: str, *arms: Arm) -> Probe:
    """A language-modelling probe trained 10× longer at cpu scale (the cluster scale is long already),
    each arm at the lr `lr_from` chose for it: a claim about late training tested where it is made."""
    return Probe(name=name, base=None, arms=arms, lr_from=lr_from, changes={
        "steps": {"cpu": 10 * LM_BASE["cpu"]["steps"], "cluster": LM_BASE["cluster"]["steps"]},
        "eval_every": {"cpu": 500, "cluster": LM_BASE["cluster"]["eval_every"]},
        "checkpoint_every": {"cpu": 1000, "cluster": LM_BASE["cluster"]["checkpoint_every"]}})


def _horizon(rule: str, *arms: Arm, options: dict[str, Any] | None = None) -> Probe:
    """A memory-horizon probe at the scale-free base (analysis/findings/scales.py), `options` changing its task."""
    base = copy.deepcopy(HORIZON_BASE)
    base["task"]["options"].update(rule=rule, **(options or {}))
    return Probe(name=f"memory_horizon/{rule}", base=base, arms=arms)


def _state(task: str, *arms: Arm, options: dict[str, Any] | None = None) -> Probe:
    """A state-tracking probe at the scale-free base (analysis/findings/scales.py), every arm tuned on the lr grid."""
    base = copy.deepcopy(STATE_BASE)
    base["task"] = {"name": task, "options": {**base["task"]["options"], **(options or {})}}
    return Probe(name=f"{task}{''.join(f'/{k}={v}' for k, v in (options or {}).items())}", base=base, arms=arms, select_lr=True)


def _speed(name: str, *arms: Arm) -> Probe:
    return Probe(name=name, base=SPEED_BASE, arms=arms)


def _head_dim(head_dim: int) -> Arm:
    return Arm(f"head_dim {head_dim}", {**GATELOOP, "model.options": {
        "cpu": {"d_inner": 64, "heads": 64 // head_dim}, "cluster": {"d_inner": 512, "heads": 512 // head_dim}}})


# U11's MQAR probe, at the setting its pilot chose before its decisive runs (sweeps/findings/u11-pilot.toml)
U11_MQAR = {**copy.deepcopy(MQAR_BASE), "steps": 2000}
U11_MQAR["task"]["options"]["num_pairs"] = 4

# P2's memory-horizon setting, chosen by its pilot's rule before its decisive runs (sweeps/findings/p2-pilot.toml)
P2_SETTING = {"seq_len": 256, "max_horizon": 64, "bucket_edges": [1, 8, 16, 32, 48]}

FINDINGS: tuple[Finding, ...] = (
    Finding(
        "U1", "the plain PyTorch associative scan cannot train at sequence length 128 without a specialised kernel",
        "re-implementation, update 1",
        (_speed("speed/matrix-state",
                Arm("matrix state, plain scan", {**GATELOOP, "model.options": {"heads": 2}, "speed.modes": ["scan"]}),
                Arm("matrix state, chunked", {**GATELOOP, "model.options": {"heads": 2}, "speed.modes": ["chunked"]}),
                Arm("max heads, plain scan", {**GATELOOP, "speed.modes": ["scan"]}),
                Arm("max heads, compiled", {**GATELOOP, "speed.modes": ["recurrent"]})),),
        (Ratio("matrix state, plain scan", "matrix state, chunked", quantity="peak_memory_bytes", length=128, at_least=10.0),
         Ratio("matrix state, plain scan", "matrix state, chunked", quantity="median_ms", length=1024, at_least=10.0)),
        notes="A memory wall: the scan materialises a (dk × dv) state per position and level. Measured on one GateLoop "
              "layer (d_model 128, 2 heads of 64, batch 4), forward+backward.",
    ),
    Finding(
        "U3", "GateLoop converges better than vanilla linear attention", "re-implementation, update 3",
        (_lm("lm/mixers", Arm("gateloop", GATELOOP), Arm("linear_attention", {"model.name": "linear_attention"}),
             select_lr=True),),
        (Better("gateloop", "linear_attention", metric="final_bpc"),),
    ),
    Finding(
        "U5", "with max heads (heads = dimension) no fused kernel is needed", "re-implementation, update 5",
        (_speed("speed/max-heads",
                Arm("max heads, plain scan", {**GATELOOP, "speed.modes": ["scan"]}),
                Arm("softmax attention", {**ATTENTION, "speed.modes": ["parallel"]}),
                Arm("matrix state, plain scan", {**GATELOOP, "model.options": {"heads": 2}, "speed.modes": ["scan"]})),),
        (Ratio("max heads, plain scan", "softmax attention", quantity="median_ms", length=1024, at_most=2.0),
         Ratio("matrix state, plain scan", "max heads, plain scan", quantity="median_ms", length=1024, at_least=2.0)),
        notes="Forward+backward time of one layer in plain PyTorch (no compiled loop, no kernel).",
    ),
    Finding(
        "U7a", "ablating the state transition gives the expected negative result", "re-implementation, update 7",
        (_lm("lm/transition", Arm("gateloop", GATELOOP),
             Arm("fixed transition", {**GATELOOP, "model.options": {"state_transition": "fixed"}}),
             Arm("no transition", {**GATELOOP, "model.options": {"state_transition": "none"}})),),
        (Better("gateloop", "no transition", metric="final_bpc"),
         Better("gateloop", "fixed transition", metric="final_bpc")),
    ),
    Finding(
        "U7b", "ablating complex-valued states shows no difference early in training", "re-implementation, update 7",
        (_lm("lm/complex", Arm("complex, real-part operator", {**GATELOOP, "model.options": {"state_operator": "real_part"}}),
             Arm("real (signed)", {**GATELOOP, "model.options": {"complex_transition": False, "real_transition_sign": True}}),
             Arm("gateloop", GATELOOP)),
         _horizon("sum_mod", Arm("gateloop", GATELOOP),
                  Arm("real (signed)", {**GATELOOP, "model.options": {"complex_transition": False, "real_transition_sign": True}}))),
        (Similar("complex, real-part operator", "real (signed)", metric="validation_bpc", at_step={"cpu": 300, "cluster": 10_000},
                 margin=0.02),
         Similar("gateloop", "real (signed)", metric="validation_bpc", at_step={"cpu": 300, "cluster": 10_000}, margin=0.02),
         Better("gateloop", "real (signed)", metric="final_accuracy", probe="memory_horizon/sum_mod")),
        notes="Judged as claimed (the state updated by Re(a), the operator before the re-implementation's update 12) and "
              "again under the complex operator; 'early' is 30% of training (step 300 of 1,000; 10k of 100k). "
              "sum_mod (a running sum modulo 16) is the mechanism probe: a phase can count modulo n, a real decay cannot.",
    ),
    Finding(
        "U8", "one joint kv projection (max heads) gives similar results to separate k and v", "re-implementation, update 8",
        (_lm("lm/kv", Arm("gateloop", GATELOOP), Arm("joint kv", {**GATELOOP, "model.options": {"kv_projection": "joint"}})),),
        (Similar("joint kv", "gateloop", metric="final_bpc", margin=0.02),),
    ),
    Finding(
        "U9/U10", "head to head over a long run, attention overtakes GateLoop", "re-implementation, updates 9 and 10",
        (_lm("lm/mixers", Arm("gateloop", GATELOOP), Arm("softmax_attention", ATTENTION)),
         _long_run("lm/long", "lm/mixers", Arm("gateloop", GATELOOP), Arm("softmax_attention", ATTENTION))),
        (Crossover("softmax_attention", "gateloop", metric="validation_bpc", probe="lm/long"),
         Crossover("softmax_attention", "gateloop", metric="validation_bpc")),
        notes="Decided on the long run: 10× the cpu scale's steps (10,000), each arm at the lr it chose in the 1,000-step "
              "grid (lm/mixers); at cluster scale the long run is the scale's own 100k steps. The crossover is the first "
              "evaluation after which attention's mean stays ahead; the 1,000-step curves are reported beside it.",
    ),
    Finding(
        "U11", "increasing the head dimension steadily improves results; max heads is not optimal", "re-implementation, update 11",
        (_lm("lm/head_dim", *(_head_dim(d) for d in (1, 4, 16, 64))),
         Probe("mqar/head_dim", U11_MQAR, tuple(_head_dim(d) for d in (1, 4, 16, 64)), changes={"model.options.short_conv": 4})),
        (Monotone(("head_dim 1", "head_dim 4", "head_dim 16", "head_dim 64"), metric="final_bpc"),
         Monotone(("head_dim 1", "head_dim 4", "head_dim 16", "head_dim 64"), metric="final_accuracy", probe="mqar/head_dim")),
        notes="d_inner fixed (64 at cpu, 512 at cluster) so head_dim = d_inner / heads exactly; d_model and the MLP are solved. "
              "MQAR is the capacity probe: a head of dimension d stores a d × d matrix. At the first pass's setting (16 pairs, "
              "no short convolution, 1,500 steps) every arm stayed at chance; its setting now (4 pairs, a short convolution "
              "of 4 on q, k, v in every arm, 2,000 steps) is the first candidate of a pilot run before these runs "
              "(sweeps/findings/u11-pilot.toml, results/findings/pilots/u11) at which an arm reaches 0.5 test accuracy.",
    ),
    Finding(
        "U13", "after the complex-kv fix GateLoop is still clearly worse than attention", "re-implementation, update 13",
        (_lm("lm/mixers", Arm("gateloop", GATELOOP), Arm("softmax_attention", ATTENTION)),),
        (Better("softmax_attention", "gateloop", metric="final_bpc"),),
    ),
    Finding(
        "U14", "mixing GateLoop and attention layers shows synergy at small scale, parameters held constant",
        "re-implementation, update 14",
        (_lm("lm/hybrid", Arm("hybrid", {"model.name": {"cpu": ["gateloop", "softmax_attention"],
                                                          "cluster": ["gateloop", "softmax_attention"] * 3}}),
             Arm("gateloop", GATELOOP), Arm("softmax_attention", ATTENTION)),),
        (Better("hybrid", "softmax_attention", metric="final_bpc"), Better("hybrid", "gateloop", metric="final_bpc")),
        notes="Synergy = the hybrid beats both pure models; the verdict is the comparison with the better pure model (attention).",
    ),
    Finding(
        "P1", "GateLoop outperforms S5, RetNet and linear attention (and, here, Mamba) on autoregressive language modelling",
        "paper (arXiv 2311.01927), section 4",
        (_lm("lm/mixers", *(Arm(name, {"model.name": name}) for name in
                            ("gateloop", "s5", "retnet", "linear_attention", "mamba", "softmax_attention"))),),
        (Better("gateloop", "s5", metric="final_bpc"), Better("gateloop", "retnet", metric="final_bpc"),
         Better("gateloop", "linear_attention", metric="final_bpc"), Better("gateloop", "mamba", metric="final_bpc")),
        notes="The verdict is the first rule's; all four comparisons are reported; attention is shown for reference.",
    ),
    Finding(
        "P2", "data-controlled transitions beat fixed decay on the memory-horizon task", "paper (arXiv 2311.01927), section 4",
        (_horizon("recall_first", Arm("gateloop", GATELOOP),
                  Arm("fixed transition", {**GATELOOP, "model.options": {"state_transition": "fixed"}}),
                  Arm("retnet", {"model.name": "retnet"}), Arm("s5", {"model.name": "s5"}), options=P2_SETTING),),
        (Better("gateloop", "fixed transition", metric="final_accuracy", probe="memory_horizon/recall_first"),
         Better("gateloop", "retnet", metric="final_accuracy", probe="memory_horizon/recall_first")),
        notes="The paper's task definition is unpublished; memory_horizon is seqbench's own (tasks/memory_horizon.py). "
              "Its setting (sequences of 256, horizons up to 64) is the first candidate of a pilot run before these runs "
              "(sweeps/findings/p2-pilot.toml, results/findings/pilots/p2) at which the fixed-decay arm stays below 0.9 "
              "test accuracy (0.82 on the pilot seed; at the first pass's 128 / 32 both arms reached ≥ 0.99). "
              "Accuracy per horizon bucket is plotted.",
    ),
)
COMPLEX, REAL_SIGNED, REAL = (Arm("complex", GATELOOP),
                              Arm("real, signed", {**GATELOOP, "model.options": {"complex_transition": False, "real_transition_sign": True}}),
                              Arm("real, unsigned", {**GATELOOP, "model.options": {"complex_transition": False}}))
# judged at 4× the longest training word (160 of 40): the final state's accuracy
AT_4X = "final_accuracy/end/L160"
DIAGONAL = ("gateloop", "s5", "mamba", "retnet", "linear_attention")
DELTA = "gated_deltanet, negative eigenvalues"

FINDINGS += (
    Finding(
        "S1", "complex transitions track modular state where real ones cannot (a probe of U7b where it should matter)",
        "seqbench's own probe of the re-implementation's update 7; the mechanism of arXiv 2411.12537",
        (_state("parity", COMPLEX, REAL_SIGNED, REAL), _state("modular_arithmetic", COMPLEX, REAL_SIGNED, REAL, options={"modulus": 5})),
        (Better("complex", "real, signed", metric=AT_4X, probe="modular_arithmetic/modulus=5"),
         Better("complex", "real, unsigned", metric=AT_4X, probe="modular_arithmetic/modulus=5"),
         Better("real, signed", "real, unsigned", metric=AT_4X, probe="parity"),
         Better("complex", "real, unsigned", metric=AT_4X, probe="parity")),
        notes="Predictions written before any run: on parity a sign suffices (phase 0 or π: the signed real arm tracks it as the "
              "complex one does, the unsigned one, a ≥ ½ > 0, cannot); on Z_5 only a rotation by 2π/5 — a complex transition — "
              "tracks the state and extrapolates. Trained on words of 3–40, judged by the final state's accuracy at 160 (4×); "
              "every arm tuned on the lr grid, 3 seeds; the verdict is the first rule's (complex vs signed real on Z_5).",
    ),
    Finding(
        "S2", "non-abelian state tracking (S_5) needs non-diagonal transitions",
        "arXiv 2404.08819 (diagonal SSMs cannot track S_5), arXiv 2411.12537 (negative eigenvalues, delta rule)",
        (_state("word_problem", *(Arm(name, {"model.name": name}) for name in DIAGONAL),
                Arm(DELTA, {"model.name": "gated_deltanet", "model.options": {"negative_eigenvalues": True}}), options={"group": "S5"}),),
        tuple(Better(DELTA, name, metric="final_accuracy/end/L40", probe="word_problem/group=S5") for name in DIAGONAL),
        notes="Every diagonal-transition mixer against the delta rule with β ∈ (0, 2) (Gated DeltaNet, negative_eigenvalues), "
              "each tuned on the lr grid, 3 seeds, parameters matched; judged by the final state's accuracy on test words of the "
              "training length (40: the capability, not extrapolation); the verdict is the first rule's (against GateLoop), the "
              "others are reported. At this scale every arm may stay near chance (1/120): then each rule is inconclusive.",
    ),
)
BY_ID = {finding.id: finding for finding in FINDINGS}


def select(ids: list[str] | None) -> list[Finding]:
    if not ids:
        return list(FINDINGS)
    unknown = [i for i in ids if i not in BY_ID]
    if unknown:
        raise ValueError(f"unknown finding(s) {', '.join(unknown)}; valid: {', '.join(BY_ID)}")
    return [BY_ID[i] for i in ids]
