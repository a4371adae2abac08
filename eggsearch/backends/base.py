"""The measurement-backend interface."""

from __future__ import annotations

from abc import ABC, abstractmethod

from eggsearch.ops.base import Problem
from eggsearch.records import Measurement
from eggsearch.structures import Structure


class Backend(ABC):
    """Compiles, verifies and times candidates; survives any candidate.

    Lifecycle: :meth:`start` once (returns a description of the device: ``name``,
    ``interpreter``, versions, properties), then :meth:`evaluate` and :meth:`baseline` any number
    of times, then :meth:`close`. ``evaluate`` never raises for a bad kernel: compile errors,
    faults, hangs and wrong answers come back as a :class:`Measurement` with that status.
    """

    name: str = ""
    #: True when times are GPU times that can be compared with a roofline.
    gpu_times: bool = False

    @abstractmethod
    def start(self) -> dict:
        """Bring the backend up and describe the device."""

    @abstractmethod
    def evaluate(self, problem: Problem, structure: Structure, config: dict,
                 seeds: tuple[int, ...]) -> Measurement:
        """Verify on every seed's fresh inputs, then time one candidate."""

    @abstractmethod
    def baseline(self, problem: Problem, seed: int) -> Measurement:
        """Time PyTorch eager on the same kind of inputs, the same way."""

    def round_robin(self, problem: Problem, candidates: list[tuple[Structure, dict]],
                    seed: int, rounds: int, pytorch: bool = False) -> dict:
        """Time ``candidates`` (and PyTorch eager) again side by side in ``rounds`` rounds, so
        that clock drift falls on all alike: ``{"rounds_ms": [per candidate, PyTorch last],
        "errors": {index: message}, "timer": ...}``, or ``{"error": ...}``. Optional: the
        runner's head-to-head and the sweep's confirmation are skipped without it."""
        return {"error": f"the {self.name} backend cannot time candidates side by side"}

    def head_to_head(self, problem: Problem, candidates: list[tuple[Structure, dict]],
                     seed: int, rounds: int) -> dict:
        """Candidates against PyTorch in alternating rounds; the fastest by the median of its
        rounds wins: ``best_index``, ``best_ms``, ``pytorch_ms``, ``speedup`` (medians),
        ``medians_ms`` (per candidate, None for one that failed), ``errors`` (index: message),
        or ``{"error": ...}`` when no candidate (or PyTorch) could be timed."""
        import statistics

        reply = self.round_robin(problem, candidates, seed, rounds, pytorch=True)
        if "error" in reply:
            return {"error": reply["error"]}
        *timed, pytorch_rounds = reply["rounds_ms"]
        medians = [statistics.median(r) if r else None for r in timed]
        errors = {int(i): e for i, e in reply["errors"].items()}
        if not pytorch_rounds or all(m is None for m in medians):
            return {"error": errors.get(0) or next(iter(errors.values()), "nothing was timed")}
        best = min((m, i) for i, m in enumerate(medians) if m is not None)[1]
        pytorch = statistics.median(pytorch_rounds)
        return {"best_index": best, "best_ms": medians[best], "pytorch_ms": pytorch,
                "speedup": pytorch / medians[best], "rounds": len(pytorch_rounds),
                "best_rounds_ms": timed[best], "pytorch_rounds_ms": pytorch_rounds,
                "medians_ms": medians, "errors": errors, "timer": reply["timer"]}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes and devices."""
