"""The proposer interface (stage one)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from eggsearch.ops.base import OpSpec, Problem
from eggsearch.structures import Structure


class Proposer(ABC):
    """Proposes candidate structures for a problem.

    Lifecycle: built once per run; :meth:`propose` is called once, before the study starts,
    with the op, the problem and ``env`` (the variables constraints see: problem sizes, dtype,
    hardware limits). It returns structures whose spaces the study will search; it may return
    none. A proposer never measures anything itself: every structure goes through the same
    isolated verification and timing as the library's.
    """

    name: str = ""

    @abstractmethod
    def propose(self, op: OpSpec, problem: Problem,
                env: Mapping[str, object]) -> list[Structure]:
        """Structures to try for ``problem``."""
