"""``check``: verify and time any answer to a problem, each side in its own worker process.

The answer's worker verifies it (:mod:`eggsearch.problems.verifier`) and times it; the parent
then times a batch of its calls with its own clock (which no answer can patch) and rejects a
reported time far below what that clock saw. A fresh worker that never imports the answer times
PyTorch eager and ``torch.compile``. On a GPU, a time below the problem's roofline bound is
flagged ``suspicious`` and never counted as a win.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from multiprocessing import Pipe
from pathlib import Path

from eggsearch.backends.isolated import WorkerProcess
from eggsearch.errors import UsageError
from eggsearch.problems.loader import validate_problem

# A reported time below this share of the parent's own per-call time is not believed.
PARENT_CLOCK_RATIO = 0.25
PARENT_CLOCK_SLACK_MS = 0.05
PARENT_CLOCK_TRIES = 3
BATCH_MS = 300.0
# torch.compile's own compile time is not what is measured; a baseline that takes longer than
# this to compile is reported as not available rather than holding the run.
COMPILE_TIMEOUT_S = 300.0


class ProblemWorkerProcess(WorkerProcess):
    """A :class:`WorkerProcess` running :mod:`eggsearch.problems.worker`."""

    def _start(self) -> None:
        parent, child = Pipe()
        log_file = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eggsearch.problems.worker", "--fd",
                 str(child.fileno()), "--device", self.device],
                pass_fds=[child.fileno()], env=self.env, stdin=subprocess.DEVNULL,
                stdout=log_file, stderr=log_file)
        finally:
            child.close()
            if self.log_path:
                log_file.close()
        self.conn = parent


def worker_env(interpreter: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["TRITON_INTERPRET"] = "1" if interpreter else "0"
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class WorkerFailed(Exception):
    """The worker hung, died or could not answer."""


def ask(worker: WorkerProcess, message: dict, timeout: float) -> dict:
    reply = worker.request(message, timeout)
    if reply.get("status") in ("timeout", "runtime_fault") and "message" in reply:
        raise WorkerFailed(reply["message"])
    if "usage_error" in reply:
        raise UsageError(reply["usage_error"])
    return reply


@dataclass(frozen=True)
class CheckSettings:
    device: str = "cpu"              # "cuda" or "cpu" (the Triton interpreter)
    small: bool = True               # the problem's SMALL sizes
    trials: int = 5
    seed: int = 0
    compile: bool = True             # also time torch.compile
    timeout_s: float = 600.0         # per worker request
    log_path: Path | None = None

    @property
    def interpreter(self) -> bool:
        return not self.device.startswith("cuda")


@dataclass(frozen=True)
class CheckResult:
    """The verdict and times of one answer. ``status``: correct, incorrect, cheat or
    suspicious; times in ms (interpreter wall clock where ``interpreter``)."""

    problem: str
    solution: str
    status: str
    reason: str
    interpreter: bool
    device: str
    verdict: dict = field(default_factory=dict)
    answer_ms: float | None = None
    eager_ms: float | None = None
    compile_ms: float | None = None
    compile_error: str = ""
    timing: dict = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    @property
    def speedup(self) -> float | None:
        return _ratio(self.eager_ms, self.answer_ms) if self.correct else None

    @property
    def speedup_compile(self) -> float | None:
        return _ratio(self.compile_ms, self.answer_ms) if self.correct else None

    def to_dict(self) -> dict:
        return {**asdict(self), "speedup": self.speedup, "speedup_compile": self.speedup_compile}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def check(problem: Path, solution: Path, settings: CheckSettings) -> CheckResult:
    """Verify and time ``solution`` against ``problem``; raises UsageError for bad input only."""
    validate_problem(problem, settings.small)
    if not Path(solution).is_file() or Path(solution).suffix != ".py":
        raise UsageError(f"{solution}: no such solution file (.py)")
    base = {"problem": str(problem), "solution": str(solution),
            "interpreter": settings.interpreter}
    reference = _start(settings)
    reference._start()  # its imports overlap the answer's side; it runs nothing until asked
    try:
        answer = _answer_side(problem, solution, settings)
        device = answer.pop("device_name", "")
        status, reason = answer["status"], answer["reason"]
        if status != "correct":  # a wrong answer gets no time, so no baseline is needed
            return CheckResult(**base, status=status, reason=reason, device=device,
                               verdict=answer["verdict"])
        eager, compiled, compile_error = _reference_side(reference, problem, settings)
    finally:
        reference.close()
    if not settings.interpreter:
        status, reason = _roofline_flag(problem, settings, answer["answer_ms"], device)
    return CheckResult(**base, status=status, reason=reason, device=device,
                       verdict=answer["verdict"], answer_ms=answer["answer_ms"], eager_ms=eager,
                       compile_ms=compiled, compile_error=compile_error,
                       timing=answer["timing"])


def _start(settings: CheckSettings) -> ProblemWorkerProcess:
    return ProblemWorkerProcess(settings.device, worker_env(settings.interpreter),
                                settings.log_path)


def _answer_side(problem: Path, solution: Path, settings: CheckSettings) -> dict:
    out = {"status": "incorrect", "reason": "", "verdict": {}, "answer_ms": None, "timing": {}}
    worker = _start(settings)
    try:
        info = ask(worker, {"kind": "load", "problem": str(problem), "small": settings.small,
                            "solution": str(solution)}, settings.timeout_s)
        out["device_name"] = info.get("name", "")
        if "error" in info:
            return {**out, "reason": info["error"]}
        verdict = ask(worker, {"kind": "verify", "trials": settings.trials,
                               "seed": settings.seed}, settings.timeout_s)
        if "error" in verdict:
            return {**out, "reason": verdict["error"]}
        out.update(verdict=verdict, status=verdict["status"], reason=verdict["reason"])
        if verdict["status"] != "correct":
            return out
        t = ask(worker, {"kind": "time", "which": "answer", "seed": settings.seed},
                settings.timeout_s)
        if "error" in t or "cheat" in t:
            status = "cheat" if "cheat" in t else "incorrect"
            return {**out, "status": status, "reason": t.get("cheat") or t["error"]}
        out.update(timing=t, answer_ms=t["time_ms"])
        if t.get("outside_stream"):
            return {**out, "status": "cheat", "reason":
                    f"work outside the timed stream: events {t['events_ms']:.4g} ms, "
                    f"device-synchronized wall {t['wall_ms']:.4g} ms"}
        flag = _parent_clock_flag(worker, t["time_ms"], settings)
        if flag:
            return {**out, "status": "cheat", "reason": flag}
        return out
    except WorkerFailed as exc:
        return {**out, "reason": f"the answer's worker failed: {exc}"}
    finally:
        worker.close()


def _parent_clock_flag(worker: ProblemWorkerProcess, reported_ms: float,
                       settings: CheckSettings, batch_ms: float = BATCH_MS) -> str:
    """Time ``n`` calls with the parent's clock (minus ``n`` empty calls); a reported time far
    below it means the worker's clock was tampered with. A busy machine slows a batch now and
    then, a patched clock always: the best of up to three batches is compared."""
    n = max(2, min(2000, math.ceil(batch_ms / max(reported_ms, 1e-3))))
    best = math.inf
    for _ in range(PARENT_CLOCK_TRIES):
        spent = {}
        for noop in (True, False):
            t0 = time.perf_counter()
            ask(worker, {"kind": "batch", "which": "answer", "n": n, "noop": noop,
                         "seed": settings.seed}, settings.timeout_s)
            spent[noop] = time.perf_counter() - t0
        best = min(best, max(0.0, spent[False] - spent[True]) * 1e3 / n)
        if (reported_ms >= PARENT_CLOCK_RATIO * best
                or best - reported_ms <= PARENT_CLOCK_SLACK_MS):
            return ""
    return (f"reported {reported_ms:.4g} ms per call, but the parent's clock saw at best "
            f"{best:.4g} ms per call (a patched timer?)")


def _reference_side(worker: ProblemWorkerProcess, problem: Path, settings: CheckSettings
                    ) -> tuple[float | None, float | None, str]:
    """Eager and ``torch.compile`` times from ``worker``, which never imports the answer."""
    try:
        ask(worker, {"kind": "load", "problem": str(problem), "small": settings.small,
                     "solution": None}, settings.timeout_s)
        eager = ask(worker, {"kind": "time", "which": "reference", "seed": settings.seed},
                    settings.timeout_s)
        if "error" in eager:
            raise UsageError(f"{problem}: the reference failed while timed: {eager['error']}")
        if not settings.compile:
            return eager["time_ms"], None, "not run"
        try:
            comp = ask(worker, {"kind": "time", "which": "compile", "seed": settings.seed},
                       min(settings.timeout_s, COMPILE_TIMEOUT_S))
        except WorkerFailed as exc:
            return eager["time_ms"], None, str(exc)
        return eager["time_ms"], comp.get("time_ms"), comp.get("error", "")
    except WorkerFailed as exc:
        raise UsageError(f"{problem}: the reference's worker failed: {exc}") from None


def _roofline_flag(problem: Path, settings: CheckSettings, answer_ms: float,
                   device: str) -> tuple[str, str]:
    from eggsearch.problems.cost import roofline_bound_ms

    bound = roofline_bound_ms(problem, settings.small, device)
    if bound is not None and answer_ms < bound:
        return "suspicious", (f"{answer_ms * 1e3:.2f} us is below the roofline bound "
                              f"{bound * 1e3:.2f} us")
    return "correct", ""
