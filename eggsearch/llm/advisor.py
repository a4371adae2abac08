"""Stage two's LLM proposal operator: the tuning advisor as the tuner's ``advisor`` hook.

Every ``every`` trials the tuner calls it with the study's history. It shows the advisor agent
the structures and their (feasible) domains, the best trials and the recent failures, and the
memories of both stages; it checks each proposed config (known structure, every param given, each
value in its domain, constraints hold, not measured yet) and hands the good ones back to be
enqueued into the running study. Rejected proposals and LLM errors are noted in stage two's
memory and never stop the study; once the run's LLM budget is used up it stays silent.
"""

from __future__ import annotations

import logging

from eggsearch.llm.agents import Advisor
from eggsearch.llm.client import LLMBudgetExhausted, LLMError
from eggsearch.llm.memory import StageMemory
from eggsearch.llm.replies import MalformedReply
from eggsearch.plan import SearchPlan, key_of
from eggsearch.tuner import Advice, Narrowing

log = logging.getLogger(__name__)


class LLMTuningAdvisor:
    """Args:
        agent: the advisor agent.
        problem: the ``problem`` template context.
        memory_one, memory_two: the stages' memories (stage one's is read, two's written).
        every: trials between calls; max_configs: configs per call; shown: trials shown.
    """

    def __init__(self, agent: Advisor, problem: dict, memory_one: StageMemory,
                 memory_two: StageMemory, every: int, max_configs: int, shown: int):
        self.agent, self.problem = agent, problem
        self.memory_one, self.memory_two = memory_one, memory_two
        self.every, self.max_configs, self.shown = every, max_configs, shown
        self.silent = False
        self.calls = 0
        self.enqueued = 0

    def __call__(self, plan: SearchPlan, history: list[dict]) -> Advice:
        if self.silent:
            return Advice()
        self._note_progress(history)
        context = {"problem": self.problem, "structures": _structures(plan),
                   "history": _shown(history, self.shown), "max_configs": self.max_configs,
                   "memory_one": self.memory_one.render(),
                   "memory_two": self.memory_two.render()}
        self.calls += 1
        try:
            data = self.agent.advise(context)
        except LLMBudgetExhausted as exc:
            self.silent = True
            self.memory_two.add("error", "advisor", str(exc))
            return Advice()
        except (LLMError, MalformedReply) as exc:
            self.memory_two.add("error", "advisor", str(exc))
            log.warning("LLM advisor: %s", exc)
            return Advice()
        measured = {key_of(h["structure"], h["config"]) for h in history if h.get("config")}
        configs = []
        for item in data["configs"][: self.max_configs]:
            why = self._reject(plan, item["structure"], item["config"], measured)
            if why:
                self.memory_two.add("rejected", item["structure"], f"{item['config']}: {why}")
                continue
            domains = plan.plans[item["structure"]].domains
            # The domain's own value (a JSON 128.0 becomes the declared 128).
            config = {p: next(v for v in values if v == item["config"][p])
                      for p, values in domains.items()}
            configs.append((item["structure"], config))
            self.memory_two.add("advised", item["structure"],
                                f"{item['config']} ({item.get('why', '')})")
        narrow = tuple(Narrowing(n["structure"], n["param"], n["low"], n["high"])
                       for n in data.get("narrow", ()) if n["structure"] in plan.plans)
        self.enqueued += len(configs)
        return Advice(tuple(configs), narrow)

    @staticmethod
    def _reject(plan: SearchPlan, name: str, config: dict, measured: set[str]) -> str:
        sp = plan.plans.get(name)
        if sp is None:
            return f"unknown structure (known: {', '.join(plan.plans)})"
        if set(config) != set(sp.domains):
            return f"give exactly the params {', '.join(sp.domains)}"
        for p, values in sp.domains.items():
            if config[p] not in values:
                return f"{p}={config[p]!r} is outside its feasible values {list(values)}"
        broken = plan.violations(name, config)
        if broken:
            return f"breaks constraint(s) {', '.join(c.name for c in broken)}"
        if key_of(name, config) in measured:
            return "already measured"
        return ""

    def _note_progress(self, history: list[dict]) -> None:
        ok = [h for h in history if h["status"] == "ok" and h["time_ms"] is not None]
        failed = [h for h in history if h["status"] not in ("ok", "pruned", "duplicate")]
        best = min(ok, key=lambda h: h["time_ms"]) if ok else None
        text = f"{len(history)} trials, {len(failed)} failed"
        if best:
            text += f"; best {best['structure']} {best['config']} {best['time_ms']:.4g} ms"
        self.memory_two.add("measured", "study", text)


def _structures(plan: SearchPlan) -> list[dict]:
    return [{"name": name, "origin": sp.structure.origin,
             "params": [{"name": p.name, "kind": p.kind, "domain": list(sp.domains[p.name])}
                        for p in sp.structure.space.params],
             "constraints": [f"{c.name}: {c.expr.source}" for c in
                             (*sp.structure.space.constraints, *sp.extra)]}
            for name, sp in plan.plans.items()]


def _shown(history: list[dict], limit: int) -> list[dict]:
    """The best correct trials, then the latest failures, at most ``limit`` in all."""
    ok = sorted((h for h in history if h["status"] == "ok" and h["time_ms"] is not None),
                key=lambda h: h["time_ms"])
    failed = [h for h in history if h["status"] not in ("ok", "pruned", "duplicate")]
    picked = ok[: max(1, limit * 2 // 3)] + failed[-(limit // 3 or 1):]
    return [{"trial": h["trial"], "structure": h["structure"], "config": h["config"],
             "status": h["status"],
             "time": "-" if h["time_ms"] is None else f"{h['time_ms']:.4g} ms",
             "message": (h.get("message") or "")[:160]} for h in picked[:limit]]
