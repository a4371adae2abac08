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

    def head_to_head(self, problem: Problem, structure: Structure, config: dict, seed: int,
                     rounds: int) -> dict:
        """One config against PyTorch in alternating rounds: ``best_ms``, ``pytorch_ms``,
        ``speedup`` (medians of the rounds), or ``{"error": ...}``."""
        import statistics

        reply = self.round_robin(problem, [(structure, config)], seed, rounds, pytorch=True)
        if "error" in reply or reply["errors"]:
            return {"error": reply.get("error") or reply["errors"][0]}
        best_rounds, pytorch_rounds = reply["rounds_ms"]
        best, pytorch = statistics.median(best_rounds), statistics.median(pytorch_rounds)
        return {"best_ms": best, "pytorch_ms": pytorch, "speedup": pytorch / best,
                "rounds": len(best_rounds), "best_rounds_ms": best_rounds,
                "pytorch_rounds_ms": pytorch_rounds, "timer": reply["timer"]}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes and devices."""
