"""The agents: planner, coder, debugger (stage one) and tuning advisor (stage two).

Each agent renders its two templates (``prompts/<agent>.system.j2``, ``.user.j2``) with a context,
sends them through :class:`~eggsearch.llm.client.LLMClient`, and reads the reply against its
schema. A reply that does not fit is answered once with ``prompts/reask.j2`` (which says what was
wrong); a second misfit raises :class:`~eggsearch.llm.replies.MalformedReply`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TypeVar

from eggsearch.llm.client import LLMClient
from eggsearch.llm.prompts import PromptLibrary
from eggsearch.llm.replies import CodeReply, MalformedReply, parse_code, parse_json
from eggsearch.llm.settings import AgentSettings

T = TypeVar("T")

PLANNER_SCHEMA = {"plans": [{"name": str, "categories": [str], "idea": str,
                             "steps?": [str], "tunables?": [str]}]}
DEBUGGER_SCHEMA = {"root_cause": str, "modification_plan": [str], "category?": str}
ADVISOR_SCHEMA = {"configs": [{"structure": str, "config": {}, "why?": str}],
                  "narrow?": [{"structure": str, "param": str, "low": float, "high": float}],
                  "notes?": str}


@dataclass(frozen=True)
class Plan:
    """A stage-one plan: what structure to write and why."""

    name: str
    categories: tuple[str, ...]
    idea: str
    steps: tuple[str, ...] = ()
    tunables: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Diagnosis:
    root_cause: str
    modification_plan: tuple[str, ...]
    category: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class Agent:
    """Base of the agents: render, ask, parse, re-ask once."""

    name = ""
    stage = "one"

    def __init__(self, client: LLMClient, prompts: PromptLibrary, settings: AgentSettings):
        self.client, self.prompts, self.settings = client, prompts, settings

    def _chat(self, messages: list[dict]) -> str:
        return self.client.chat(self.name, self.stage, messages,
                                self.settings.max_tokens[self.name]).text

    def ask(self, context: dict, parse: Callable[[str], T]) -> T:
        """Ask with ``context``; parse the reply, asking again once if it does not fit."""
        messages = self.prompts.messages(self.name, context)
        text = self._chat(messages)
        try:
            return parse(text)
        except MalformedReply as exc:
            reask = self.prompts.render("reask.j2", {"agent": self.name, "issue": str(exc)})
            messages = [*messages, {"role": "assistant", "content": text},
                        {"role": "user", "content": reask}]
            return parse(self._chat(messages))


class Planner(Agent):
    name = "planner"

    def plan(self, context: dict) -> list[Plan]:
        data = self.ask(context, lambda text: parse_json(text, PLANNER_SCHEMA))
        plans, seen = [], set()
        for raw in data["plans"]:
            name = identifier(raw["name"])
            if name in seen:
                continue
            seen.add(name)
            plans.append(Plan(name, tuple(raw["categories"]), raw["idea"],
                              tuple(raw.get("steps", ())), tuple(raw.get("tunables", ()))))
        if not plans:
            raise MalformedReply("the planner returned no plan")
        return plans


class Coder(Agent):
    name = "coder"

    def write(self, context: dict) -> CodeReply:
        """A module and its space for the plan in ``context`` (and its ``repair`` block)."""
        return self.ask(context, parse_code)


class Debugger(Agent):
    name = "debugger"

    def diagnose(self, context: dict) -> Diagnosis:
        data = self.ask(context, lambda text: parse_json(text, DEBUGGER_SCHEMA))
        return Diagnosis(data["root_cause"], tuple(data["modification_plan"]),
                         str(data.get("category", "")))


class Advisor(Agent):
    name = "advisor"
    stage = "two"

    def advise(self, context: dict) -> dict:
        return self.ask(context, lambda text: parse_json(text, ADVISOR_SCHEMA))


def identifier(text: str, prefix: str = "") -> str:
    """A lower-case Python identifier made from ``text`` (for structure names)."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", str(text)).strip("_").lower()[:40] or "structure"
    name = prefix + name
    return name if name[0].isalpha() else f"s_{name}"
