"""The contract every mixer keeps, as checks a user runs on their own (`seqbench check MIXER`) and the
repository's generic tests run on every registered mixer — one code path for both.

    reference        each mode in float32 against `reference_forward` in float64: outputs and the
                     gradients of the input and of every parameter, at two odd lengths
    modes agree      each mode computes the default mode's function (float64)
    causal           an output never depends on a later input
    step             decoding token by token from `init_state` equals the forward
    prefill + step   decoding continues from the state a forward returns
    state size       `state_size` is a positive integer
    device, dtype    on PyTorch's meta device, in float32 and float64, every mode and `step` keep the
                     input's device and dtype (a tensor made on the CPU inside would clash, as on CUDA)
    errors           a bad mode names the valid ones; bad shapes, an empty sequence, integer input fail clearly
    parameters       the mixer inside a LanguageModel can be matched to a parameter count within ±2%
                     (what fair comparisons need)
    trains           a 2-layer LM of it lowers its loss on a fixed copy task within 60 steps
"""
from __future__ import annotations

import contextlib
import copy
import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from seqbench.models import registry
from seqbench.models.backbone import LanguageModel

D_MODEL = 16
# The one tolerance per dtype for "a mode against the float64 reference" (relative error): what
# `seqbench check`, the speed sweep's correctness gate and gpu-check's numerics all judge by. Measured
# worst case over every built-in mixer and mode at d_model 64–256, L = 33: 1.1e-6 (RetNet) in float32.
TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-10}
REFERENCE_TOLERANCE, EXACT = TOLERANCE[torch.float32], TOLERANCE[torch.float64]


@dataclass
class Check:
    name: str
    mode: str | None
    run: Callable[[], tuple[bool, float | None, str]]  # → (passed, measured error, detail)

    @property
    def id(self) -> str:
        return self.name if self.mode is None else f"{self.name} [{self.mode}]"


@dataclass
class Result:
    check: str
    passed: bool
    measured: float | None
    detail: str


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖; infinite where either holds a non-finite number (a NaN
    gradient must fail a check, and NaN compares false with every tolerance)."""
    expected = expected.detach().cpu().to(torch.complex128 if expected.is_complex() else torch.float64)
    actual = actual.detach().cpu().to(expected.dtype)
    if not (torch.isfinite(actual).all() and torch.isfinite(expected).all()):
        return math.inf
    return float((actual - expected).norm() / expected.norm().clamp_min(1e-30))


def reference_error(mixer, mode: str, x: torch.Tensor) -> float:
    """Relative error of `mixer`'s `mode` (at its own dtype and device) against its float64
    `reference_forward` on the CPU, for the input `x`: forward only, no gradients kept."""
    with torch.no_grad():
        y = mixer(x.to(next(mixer.parameters()).dtype), mode=mode)
        reference = copy.deepcopy(mixer).cpu().double().reference_forward(x.detach().cpu().double())
    return relative_error(y, reference)


def checks(name: str, options: dict | None = None) -> list[Check]:
    """Every check of the contract for mixer `name` (a registered name or "module:Class") with `options`."""
    options = dict(options or {})
    cls = registry.get_class(name)

    def build(dtype=torch.float64, device=None):
        torch.manual_seed(0)
        with torch.device(device or "cpu"):
            return registry.build(name, d_model=D_MODEL, **options).to(dtype)

    x = torch.randn(2, 19, D_MODEL, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    found = [Check("reference", mode, _reference(build, mode)) for mode in cls.modes]
    found += [Check("modes agree", mode, _modes_agree(build, mode, x)) for mode in cls.modes]
    found += [Check("causal", mode, _causal(build, mode, x)) for mode in cls.modes]
    found += [Check("step", None, _step(build, x))]
    found += [Check("prefill + step", mode, _prefill(build, mode, x)) for mode in cls.modes]
    found += [Check("state size", None, _state_size(build))]
    found += [Check("device, dtype", mode, _device_dtype(build, mode)) for mode in cls.modes]
    found += [Check("errors", None, _errors(build, cls.registry_name or name, x))]
    found += [Check("parameters", None, _parameters(name, options)), Check("trains", None, _trains(name, options))]
    return found


CHECK_TIME_LIMIT_S = 120  # a check that runs longer hangs (the slowest, "trains", takes ~20 s on a 2-core CPU)


class CheckTimedOut(Exception):
    """A check past its time limit: reported as a failure naming the limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise CheckTimedOut in the main thread after `seconds` (a forward that never returns); elsewhere, no limit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise CheckTimedOut(f"did not finish within {seconds:g} s (a forward, backward or step that never returns?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def describe_error(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"SystemExit({error.code!r}): the mixer (or its module) exited the process; nothing was checked past it"
    text = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if isinstance(error, AttributeError) and any(name in str(error) for name in ("'_modules'", "'_parameters'", "'_buffers'")):
        text += " — the mixer's __init__ must call super().__init__(d_model=d_model) before it sets anything"
    return text


def run_checks(name: str, options: dict | None = None, *, time_limit_s: float = CHECK_TIME_LIMIT_S) -> Iterator[Result]:
    """Every check's result; an exception, a `sys.exit` (in the mixer or at its import) or a check
    past its time limit is a failure that says so, never a silent pass or a hang."""
    try:
        found = checks(name, options)
    except (Exception, SystemExit) as error:  # noqa: BLE001 — importing or building the mixer failed: one result says how
        yield Result("import and build", False, None, describe_error(error))
        return
    hung = None
    for check in found:
        if hung is not None:  # every check runs the forward: after one hang the rest would each wait out the limit too
            yield Result(check.id, False, None, f"not run: '{hung}' did not finish within {time_limit_s:g} s")
            continue
        try:
            with time_limit(time_limit_s):
                passed, measured, detail = check.run()
        except (Exception, SystemExit) as error:  # noqa: BLE001 — a check that raises has failed; the message says how
            passed, measured, detail = False, None, describe_error(error)
            hung = check.id if isinstance(error, CheckTimedOut) else None
        yield Result(check.id, passed, measured, detail)


def format_results(results: list[Result]) -> str:
    """The table; failures with one cause (the same error) are listed once, with the checks it stopped."""
    width = max(len(r.check) for r in results)
    lines, causes = [f"{'check':<{width}}  result  measured   detail"], {}
    for r in results:
        if not r.passed and r.measured is None:
            causes.setdefault(r.detail, []).append(r.check)
            if len(causes[r.detail]) > 1:
                continue
        measured = f"{r.measured:.1e}" if r.measured is not None else "–"
        lines.append(f"{r.check:<{width}}  {'pass' if r.passed else 'FAIL':<6}  {measured:<9}  {r.detail}")
    for checks_ in causes.values():
        if len(checks_) > 1:
            lines.append(f"{len(checks_) - 1} more check(s) failed with the same error as '{checks_[0]}': {', '.join(checks_[1:])}")
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed" + (f" ({len(causes)} distinct error(s))" if causes else ""))
    return "\n".join(lines)


# --- the checks ---------------------------------------------------------------------------------
def _outputs_and_gradients(mixer, x, forward):
    x = x.detach().clone().requires_grad_(True)
    y = forward(mixer, x)
    weight = torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(y.dtype)
    (y * weight).sum().backward()
    return y.detach(), {"input": x.grad, **{name: p.grad for name, p in mixer.named_parameters()}}


def _reference(build, mode):
    def run():
        worst = 0.0
        for length in (6, 17):
            mixer = build(torch.float32)
            reference = copy.deepcopy(mixer).double()
            x = torch.randn(2, length, D_MODEL, generator=torch.Generator().manual_seed(length))
            y, grads = _outputs_and_gradients(mixer, x, lambda m, t: m(t, mode=mode))
            y_ref, grads_ref = _outputs_and_gradients(reference, x.double(), lambda m, t: m.reference_forward(t))
            worst = max(worst, relative_error(y, y_ref))
            learned = [p for p, g in grads.items() if p != "input" and g is not None and g.abs().max() > 0]
            if learned and all(grads_ref[p] is None or grads_ref[p].abs().max() == 0 for p in learned):
                return False, None, ("reference_forward gives no parameter any gradient: it must compute with the parameters "
                                     "themselves (self.proj(x), self.weight) — state_dict(), .data and .detach() return copies "
                                     "autograd cannot see")
            for parameter, grad in grads.items():
                expected = grads_ref[parameter]
                if expected is None or expected.abs().max() == 0:
                    if grad is not None and grad.abs().max() > 0:
                        return False, None, f"d/d{parameter} is non-zero where the reference's is zero"
                    continue
                if grad is None:
                    return False, None, f"d/d{parameter} is missing (the reference has one)"
                worst = max(worst, relative_error(grad, expected))
        return worst <= REFERENCE_TOLERANCE, worst, f"outputs and gradients at L = 6, 17 (≤ {REFERENCE_TOLERANCE:g})"
    return run


def _modes_agree(build, mode, x):
    def run():
        mixer = build()
        error = relative_error(mixer(x, mode=mode), mixer(x))
        return error < EXACT, error, f"against the default mode {mixer.default_mode!r}"
    return run


def _causal(build, mode, x):
    def run():
        mixer = build()
        changed = x.clone()
        changed[:, 10:] = torch.randn(changed[:, 10:].shape, dtype=x.dtype, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            error = float((mixer(x, mode=mode)[:, :10] - mixer(changed, mode=mode)[:, :10]).abs().max())
        return error <= 1e-12, error, "outputs before position 10 with inputs from 10 on changed"
    return run


def _decode(mixer, x, state, start):
    outputs = []
    for x_t in x[:, start:].unbind(1):
        y_t, state = mixer.step(x_t, state)
        outputs.append(y_t.unsqueeze(1))
    return outputs


def _step(build, x):
    def run():
        mixer = build()
        decoded = torch.cat(_decode(mixer, x, mixer.init_state(x.shape[0], dtype=torch.float64), 0), 1)
        error = relative_error(decoded, mixer(x))
        return error < EXACT, error, "step from init_state, token by token"
    return run


def _prefill(build, mode, x):
    def run():
        mixer = build()
        y_prefix, state = mixer(x[:, :11], mode=mode, return_state=True)
        error = relative_error(torch.cat([y_prefix, *_decode(mixer, x, state, 11)], 1), mixer(x))
        return error < EXACT, error, "forward of 11 tokens, then step"
    return run


def _state_size(build):
    def run():
        size = build().state_size(seq_len=128)
        ok = isinstance(size, int) and not isinstance(size, bool) and size > 0
        return ok, None, f"state_size(seq_len=128) = {size!r}"
    return run


def _device_dtype(build, mode):
    def run():
        for dtype in (torch.float32, torch.float64):
            mixer = build(dtype, device="meta")
            x = torch.randn(2, 9, D_MODEL, device="meta", dtype=dtype)
            y, state = mixer(x, mode=mode, return_state=True)
            y_t, _ = mixer.step(x[:, 0], state)
            for what, tensor in (("output", y), ("step output", y_t)):
                if tensor.device.type != "meta" or tensor.dtype != dtype or tensor.shape[-1] != D_MODEL:
                    return False, None, f"{what} is {tensor.dtype} on {tensor.device}, the input {dtype} on meta"
        return True, None, "float32 and float64 on the meta device"
    return run


def _errors(build, name, x):
    def run():
        mixer = build()
        cases = [(lambda: mixer(x, mode="warp"), ValueError, f"unknown mode 'warp' for mixer '{name}'; valid modes: "),
                 (lambda: mixer(x[..., :8]), ValueError, "expected input of shape (batch, length, d_model)"),
                 (lambda: mixer.step(x, mixer.init_state(2)), ValueError, "expected input of shape (batch, d_model)"),
                 (lambda: mixer(x[:, :0]), ValueError, "empty"), (lambda: mixer(x.long()), TypeError, "floating-point")]
        for call, kind, text in cases:
            try:
                call()
            except kind as error:
                if text not in str(error):
                    return False, None, f"{kind.__name__} without {text!r}: {error}"
                continue
            except Exception as error:  # noqa: BLE001 — the wrong kind of error is a failed check
                return False, None, f"expected {kind.__name__} ({text!r}), got {type(error).__name__}: {error}"
            return False, None, f"no error where one was expected ({text!r})"
        return True, None, "bad mode, shapes, empty and integer input"
    return run


def _parameters(name, options):
    def run():
        from seqbench.models.fair import count_parameters, solve_widths

        target = count_parameters(vocab_size=64, d_model=48, n_layers=2, mixer="gateloop", mlp_ratio=2)
        d_model, hidden, count = solve_widths(target, mlp_ratio=2, vocab_size=64, n_layers=2, mixer=name, mixer_options=options)
        off = abs(count - target) / target
        return off <= 0.02, off, f"matched to {target:,} parameters: d_model {d_model}, MLP {hidden} ({count:,})"
    return run


def _trains(name, options):
    def run():
        torch.manual_seed(0)
        lm = LanguageModel(vocab_size=16, d_model=32, n_layers=2, mixer=name, mixer_options=options)
        optimizer = torch.optim.AdamW(lm.parameters(), lr=3e-3)
        tokens = torch.randint(1, 16, (8, 33), generator=torch.Generator().manual_seed(0))
        tokens[:, 17:] = tokens[:, 1:17]  # the second half repeats the first: learnable by any sequence mixer
        losses = []
        for _ in range(60):
            loss = torch.nn.functional.cross_entropy(lm(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
        return last < 0.8 * first, last / first, f"loss {first:.2f} → {last:.2f} in 60 steps (needs < 80%)"
    return run
