"""One run's LLM work: the client, the prompts, the settings and both stages' memories.

The runner builds an :class:`LLMSession` from the ``run`` flags, asks it for the stage-one
proposer and the stage-two advisor, and puts :meth:`LLMSession.report` (usage per agent and
stage, the memories, the endpoint without its key) into ``summary.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from eggsearch.backends.base import Backend
from eggsearch.llm.advisor import LLMTuningAdvisor
from eggsearch.llm.agents import Advisor, Coder, Debugger, Planner
from eggsearch.llm.cache import ResponseCache
from eggsearch.llm.client import LLMClient
from eggsearch.llm.memory import StageMemory
from eggsearch.llm.prompts import PromptLibrary
from eggsearch.llm.settings import AGENTS, AgentSettings, Endpoint, Limits, load_agent_settings
from eggsearch.rules import ExpertRules
from eggsearch.structures import Structure


class LLMSession:
    """Args:
        endpoint: the server and model.
        limits: the run's call and token limits.
        cache_dir: the response cache directory (None: no cache).
        settings: the agents' settings (default: ``prompts/agents.yaml``).
        prompts: the template library (default: ``prompts/``).
        sleep: how to wait between retries.
    """

    def __init__(self, endpoint: Endpoint, limits: Limits, cache_dir: Path | None,
                 settings: AgentSettings | None = None, prompts: PromptLibrary | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.endpoint, self.limits = endpoint, limits
        self.settings = settings or load_agent_settings()
        self.prompts = prompts or PromptLibrary()
        # A missing or broken template fails now, before anything is written.
        self.prompts.check([f"{a}.{part}.j2" for a in AGENTS for part in ("system", "user")]
                           + ["reask.j2"])
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.client = LLMClient(endpoint, self.settings.client, limits,
                                ResponseCache(self.cache_dir) if self.cache_dir else None,
                                sleep)
        s = self.settings
        self.memory_one = StageMemory("one", s.memory_entries, s.memory_chars)
        self.memory_two = StageMemory("two", s.memory_entries, s.memory_chars)
        self.advisor_hook: LLMTuningAdvisor | None = None
        self.proposed: list[str] = []

    def proposer(self, backend: Backend, rules: ExpertRules, out_dir: Path,
                 facts: Mapping[str, object], library: Sequence[Structure] = ()):
        """The stage-one proposer (see :class:`eggsearch.proposers.llm.LLMProposer`)."""
        from eggsearch.proposers.llm import LLMProposer

        args = (self.client, self.prompts, self.settings)
        return LLMProposer(Planner(*args), Coder(*args), Debugger(*args), backend, rules,
                           out_dir, self.memory_one, self.settings,
                           {**facts, "model": self.endpoint.model}, library)

    def advisor(self, problem: dict) -> LLMTuningAdvisor:
        """The stage-two advisor hook for :func:`eggsearch.tuner.tune`."""
        s = self.settings
        self.advisor_hook = LLMTuningAdvisor(
            Advisor(self.client, self.prompts, s), problem, self.memory_one, self.memory_two,
            s.advise_every, s.advise_max_configs, s.advise_history)
        return self.advisor_hook

    def settings_record(self) -> dict:
        """What ``settings.json`` records of the LLM setup (never the key)."""
        return {**self.endpoint.describe(), "max_calls": self.limits.max_calls,
                "max_tokens": self.limits.max_tokens,
                "cache": str(self.cache_dir) if self.cache_dir else None}

    def report(self) -> dict:
        """Usage per agent and stage, the memories and the endpoint (never the key)."""
        hook = self.advisor_hook
        return {"endpoint": self.endpoint.describe(),
                "limits": {"max_calls": self.limits.max_calls,
                           "max_tokens": self.limits.max_tokens},
                "cache": str(self.cache_dir) if self.cache_dir else None,
                "usage": self.client.ledger.report(),
                "structures": list(self.proposed),
                "advisor": {"calls": hook.calls if hook else 0,
                            "configs_enqueued": hook.enqueued if hook else 0},
                "memory": {"one": self.memory_one.to_list(),
                           "two": self.memory_two.to_list()}}
