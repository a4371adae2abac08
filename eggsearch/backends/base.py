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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes and devices."""
