"""Stage one: where structures come from.

* ``library``: the built-in expert library (``eggsearch/ops/*`` + ``search_spaces/*.yaml``),
  filtered by ``expert_rules/selection.yaml``. Works offline.
* ``llm``: LLM agents (planner, coder, debugger) write and repair Triton templates, screened and
  checked in the isolated worker (:mod:`eggsearch.proposers.llm`; built by
  :class:`eggsearch.llm.session.LLMSession`, which holds the client and the prompts).

A new proposer subclasses :class:`eggsearch.proposers.base.Proposer` and is added to
:data:`PROPOSERS`.
"""

from __future__ import annotations

from eggsearch.proposers.base import Proposer
from eggsearch.proposers.library import LibraryProposer
from eggsearch.proposers.llm import LLMProposer

PROPOSERS: dict[str, type[Proposer]] = {"library": LibraryProposer, "llm": LLMProposer}

__all__ = ["PROPOSERS", "LLMProposer", "LibraryProposer", "Proposer"]
