"""Stop requests: a signal only records that someone asked; the loop acts at its next boundary.

Slurm preempts with SIGTERM followed by the preemption signal (SIGUSR2 by default; submitit's
`SUBMITIT_PREEMPT_SIGNAL` names another), `scancel` and `scontrol requeue` send SIGTERM alone.
Acting inside a handler could checkpoint a half-applied optimizer update, so the handler records and
`at_boundary` acts: checkpoint, then submitit's requeue or a clean exit.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

PREEMPTION_SIGNALS = (signal.SIGTERM, getattr(signal, f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"))
PREEMPT_SIGNAL = PREEMPTION_SIGNALS[1]
TERM_GRACE_S = 5.0


class Preempted(SystemExit):
    """Raised at a step boundary after a stop request when nobody (submitit) requeues the run."""


class StopRequest:
    """Installed as the handler of SIGTERM and the preemption signal: it only records. Python runs
    signal handlers in the main thread between bytecodes, i.e. possibly inside a step; acting there
    could checkpoint a half-applied optimizer update. `at_boundary` acts on what was recorded."""

    def __init__(self):
        self.pending: list[int] = []
        self.previous: dict[int, object] = {}

    def __call__(self, signum, frame) -> None:
        self.pending.append(signum)

    def at_boundary(self, checkpoint) -> None:
        """The preemption signal with submitit's handler behind it: checkpoint, then let submitit
        requeue (it exits). SIGTERM: checkpoint and exit — but under Slurm first wait a moment for
        the preemption signal, which Slurm sends right after SIGTERM when it preempts (submitit
        ignores SIGTERM for that reason); `scontrol requeue` and `scancel` send SIGTERM alone."""
        if not self.pending:
            return
        checkpoint()
        if self.pending == [signal.SIGTERM] and os.environ.get("SLURM_JOB_ID"):
            deadline = time.monotonic() + TERM_GRACE_S
            while PREEMPT_SIGNAL not in self.pending and time.monotonic() < deadline:
                time.sleep(0.05)
        pending, self.pending = set(self.pending), []
        handler = self.previous.get(PREEMPT_SIGNAL)
        if PREEMPT_SIGNAL in pending and callable(handler) and handler is not signal.default_int_handler:
            handler(PREEMPT_SIGNAL, None)
            return
        raise Preempted(128 + max(pending))


@contextlib.contextmanager
def preemption_requests():
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # only the main thread may set handlers; a thread is never preempted by signal
        return
    request.previous = {sig: signal.getsignal(sig) for sig in PREEMPTION_SIGNALS}
    for sig in PREEMPTION_SIGNALS:
        signal.signal(sig, request)
    try:
        yield request
    finally:
        for sig, handler in request.previous.items():
            if signal.getsignal(sig) is request:
                signal.signal(sig, handler)


# A local sweep's launcher names itself here for its workers. submitit's local job controller is made
# to outlive the launcher, so a launcher killed by SIGKILL (no handler runs) would leave its workers
# training or timing as orphans; each worker watches the launcher and stops itself — SIGTERM, the
# same stop request as `seqbench cancel`: checkpoint at the next boundary, preempted, resumable.
LAUNCHER_ENV = "SEQBENCH_LAUNCHER_PID"
LAUNCHER_POLL_S = 1.0


def stop_when_launcher_dies() -> threading.Thread | None:
    """In a local worker whose launcher named itself: a watcher that sends this process SIGTERM once
    the launcher is gone; elsewhere (Slurm, the debug executor, a foreground run) nothing."""
    launcher = os.environ.get(LAUNCHER_ENV)
    if os.environ.get("SUBMITIT_EXECUTOR") != "local" or not (launcher or "").isdigit():
        return None

    def watch(pid: int) -> None:
        while True:
            time.sleep(LAUNCHER_POLL_S)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            except PermissionError:  # alive, another user's: not ours to judge
                continue

    watcher = threading.Thread(target=watch, args=(int(launcher),), name="launcher-watch", daemon=True)
    watcher.start()
    return watcher
