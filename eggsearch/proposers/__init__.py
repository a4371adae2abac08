"""Stage one: where structures come from.

* ``library``: the built-in expert library (``eggsearch/ops/*`` + ``search_spaces/*.yaml``),
  filtered by ``expert_rules/selection.yaml``. Works offline.

A new proposer subclasses :class:`eggsearch.proposers.base.Proposer` and is added to
:data:`PROPOSERS`.
"""

from __future__ import annotations

from eggsearch.proposers.base import Proposer
from eggsearch.proposers.library import LibraryProposer

PROPOSERS: dict[str, type[Proposer]] = {"library": LibraryProposer}

__all__ = ["PROPOSERS", "LibraryProposer", "Proposer"]
