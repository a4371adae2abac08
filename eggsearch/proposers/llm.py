"""Stage one by LLM agents: planner -> coder -> safety screen -> isolated check -> debugger loop.

For each plan the planner writes, the coder returns a Triton module and its search space. The
module must pass the static screen (:mod:`eggsearch.llm.safety`) before it is written where the
worker can import it; the space must parse like ``search_spaces/<op>.yaml``; then one feasible
config runs in the isolated worker (``backend.evaluate``) on fresh random inputs. A compile error,
fault, timeout or wrong answer goes to the debugger, whose diagnosis goes back to the coder; a
rejection by the screen or the space schema goes back to the coder directly. After
``repair_rounds`` repairs the plan is given up. Generated code is never imported in this
process. Every attempt is recorded in ``<run>/llm/attempts.jsonl``; accepted structures are
saved under ``<run>/structures/`` with their plan (:mod:`eggsearch.llm.store`).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from eggsearch.backends.base import Backend
from eggsearch.errors import ConfigFileError
from eggsearch.hardware import HARDWARE_VARIABLES
from eggsearch.llm.agents import Coder, Debugger, Diagnosis, Plan, Planner, identifier
from eggsearch.llm.client import LLMBudgetExhausted, LLMError
from eggsearch.llm.context import LibraryResult, problem_context
from eggsearch.llm.memory import StageMemory
from eggsearch.llm.replies import CodeReply, MalformedReply
from eggsearch.llm.safety import screen, summarize
from eggsearch.llm.settings import AgentSettings
from eggsearch.llm.store import check_launcher, save_structure, space_entry
from eggsearch.ops.base import OpSpec, Problem
from eggsearch.proposers.base import Proposer
from eggsearch.records import Measurement, Status
from eggsearch.rules import ExpertRules
from eggsearch.space import parse_structure_space
from eggsearch.structures import Structure

log = logging.getLogger(__name__)

LAUNCHER = "launch"
VALIDATION_SEEDS = (7_919, 104_729)
STATIC = ("unsafe", "bad_space", "no_feasible_config", "malformed")


@dataclass(frozen=True)
class Verdict:
    status: str
    message: str = ""
    structure: Structure | None = None
    config: Mapping | None = None
    measurement: Measurement | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.OK.value


class LLMProposer(Proposer):
    """Structures written by the planner/coder/debugger agents.

    Args:
        planner, coder, debugger: the stage-one agents.
        backend: where candidates are checked (the run's isolated backend, already started).
        rules: expert rules (their generic constraints apply to LLM spaces too).
        out_dir: the run directory (attempts and accepted structures are written there).
        memory: stage one's memory (passed on to stage two).
        settings: plans, repair rounds, whether to time the library first.
        facts: ``hardware``, ``interpreter``, ``baseline_ms``, ``model`` for prompts and records.
        library: the library's structures, timed once each for the planner when asked to.
    """

    name = "llm"

    def __init__(self, planner: Planner, coder: Coder, debugger: Debugger, backend: Backend,
                 rules: ExpertRules, out_dir: Path, memory: StageMemory,
                 settings: AgentSettings, facts: Mapping[str, object],
                 library: Sequence[Structure] = ()):
        self.planner, self.coder, self.debugger = planner, coder, debugger
        self.backend, self.rules, self.memory, self.settings = backend, rules, memory, settings
        self.out_dir, self.facts, self.library = Path(out_dir), dict(facts), list(library)
        self.attempts_dir = self.out_dir / "llm" / "attempts"
        self.library_results: list[LibraryResult] = []

    def propose(self, op: OpSpec, problem: Problem,
                env: Mapping[str, object]) -> list[Structure]:
        self.attempts_dir.mkdir(parents=True, exist_ok=True)
        ctx = problem_context(op, problem, str(self.facts.get("hardware", "")), env,
                              bool(self.facts.get("interpreter")),
                              self.facts.get("baseline_ms"))
        if self.settings.measure_library:
            self.library_results = self._time_library(problem, env)
        try:
            plans = self.planner.plan({
                "problem": ctx,
                "library": [r.to_dict(ctx["interpreter"]) for r in self.library_results],
                "library_names": [s.name for s in self.library],
                "n_plans": self.settings.plans, "memory": self.memory.render()})
        except (LLMError, MalformedReply) as exc:
            self.memory.add("error", "planner", str(exc))
            log.warning("LLM planner: %s", exc)
            return []
        out: list[Structure] = []
        taken = {s.name for s in self.library}
        for plan in plans[: self.settings.plans]:
            name = _unique(identifier(plan.name, "llm_"), taken)
            taken.add(name)
            self.memory.add("planned", name, f"{', '.join(plan.categories)}: {plan.idea}")
            try:
                structure = self._develop(op, problem, env, ctx, plan, name)
            except LLMBudgetExhausted as exc:
                self.memory.add("error", name, str(exc))
                log.warning("LLM: %s", exc)
                break
            except LLMError as exc:
                self.memory.add("error", name, str(exc))
                log.warning("LLM: %s", exc)
                continue
            if structure is not None:
                out.append(structure)
        return out

    # -- one plan --------------------------------------------------------------------------
    def _develop(self, op: OpSpec, problem: Problem, env: Mapping[str, object], ctx: dict,
                 plan: Plan, name: str) -> Structure | None:
        base = {"problem": ctx, "plan": plan.to_dict(), "structure_name": name,
                "launcher": LAUNCHER}
        repair = None
        for round_ in range(self.settings.repair_rounds + 1):
            try:
                draft = self.coder.write({**base, "memory": self.memory.render(),
                                          "repair": repair, "round": round_,
                                          "rounds": self.settings.repair_rounds + 1})
            except MalformedReply as exc:
                verdict, draft = Verdict("malformed", str(exc)), None
            else:
                verdict = self._check(op, problem, env, name, draft, round_)
            self._record(name, round_, verdict)
            if verdict.ok:
                return self._accept(op, problem, name, plan, draft, verdict)
            kind = "rejected" if verdict.status in STATIC else "failed"
            self.memory.add(kind, name, f"round {round_}: {verdict.status}: {verdict.message}")
            if round_ == self.settings.repair_rounds:
                break
            if draft is None:
                continue  # nothing to repair: ask the coder again with the same context
            diagnosis = None
            if verdict.status not in STATIC:
                diagnosis = self._diagnose(base, draft, verdict)
            repair = {"round": round_ + 1, "code": draft.source, "space_yaml": draft.space_yaml,
                      "error": {"status": verdict.status, "message": verdict.message},
                      "diagnosis": diagnosis.to_dict() if diagnosis else None}
        log.warning("LLM structure %s: given up after %d round(s)", name, round_ + 1)
        return None

    def _diagnose(self, base: dict, draft: CodeReply, verdict: Verdict) -> Diagnosis | None:
        try:
            d = self.debugger.diagnose({**base, "code": draft.source,
                                        "space_yaml": draft.space_yaml,
                                        "error": {"status": verdict.status,
                                                  "message": verdict.message},
                                        "memory": self.memory.render()})
        except MalformedReply as exc:
            self.memory.add("error", "debugger", f"unusable diagnosis: {exc}")
            return None
        self.memory.add("diagnosed", base["structure_name"], d.root_cause)
        return d

    def _check(self, op: OpSpec, problem: Problem, env: Mapping[str, object], name: str,
               draft: CodeReply, round_: int) -> Verdict:
        """Screen, parse, pick a config, then run it in the isolated worker."""
        stem = self.attempts_dir / f"{name}_r{round_}"
        reasons = screen(draft.source, LAUNCHER)
        if reasons:  # never written as an importable file
            stem.with_suffix(".rejected.txt").write_text(draft.source)
            return Verdict("unsafe", summarize(reasons))
        known = set(op.variables(problem)) | set(HARDWARE_VARIABLES)
        try:
            entry = space_entry(draft.space_yaml, "the search space")
            space = parse_structure_space(entry, "the search space", known)
        except ConfigFileError as exc:
            return Verdict("bad_space", str(exc))
        bad = check_launcher(draft.source, LAUNCHER, space)
        if bad:
            return Verdict("bad_space", "; ".join(bad))
        config = self._first_config(op, space, env)
        if config is None:
            return Verdict("no_feasible_config", "no config of the space satisfies its "
                           f"constraints (and the expert rules) for {problem.key}")
        path = stem.with_suffix(".py")
        path.write_text(draft.source)
        structure = Structure(op.name, name, str(path.resolve()), LAUNCHER, space, "llm")
        m = self.backend.evaluate(problem, structure, config, VALIDATION_SEEDS)
        return Verdict(m.status.value, m.message, structure, config, m)

    def _first_config(self, op: OpSpec, space, env: Mapping[str, object]) -> dict | None:
        extra = self.rules.constraints_for(op.name, set(space.param_names) | set(env))
        for seed in space.seeds:
            if not space.violations(dict(seed), env, extra):
                return dict(seed)
        feasible, _ = space.enumerate(env, extra, limit=20_000)
        return feasible[0] if feasible else None

    def _accept(self, op: OpSpec, problem: Problem, name: str, plan: Plan, draft: CodeReply,
                verdict: Verdict) -> Structure:
        entry = space_entry(draft.space_yaml, "the search space")
        module = save_structure(self.out_dir / "structures", name, op.name, draft.source, entry, {
            "launcher": LAUNCHER, "origin": "llm", "plan": plan.to_dict(),
            "model": self.facts.get("model"), "problem": problem.key,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "validation": {"backend": getattr(self.backend, "name", ""),
                           "config": dict(verdict.config),
                           "measurement": verdict.measurement.to_dict()}})
        s = verdict.structure
        self.memory.add("accepted", name, f"correct at {dict(verdict.config)} "
                        f"({verdict.measurement.time_ms} ms, {verdict.measurement.timer})")
        return Structure(s.op, s.name, str(module.resolve()), s.launcher, s.space, "llm")

    def _record(self, name: str, round_: int, verdict: Verdict) -> None:
        with open(self.out_dir / "llm" / "attempts.jsonl", "a") as f:
            f.write(json.dumps({"structure": name, "round": round_, "status": verdict.status,
                                "message": verdict.message,
                                "config": dict(verdict.config or {})}, sort_keys=True) + "\n")

    def _time_library(self, problem: Problem, env: Mapping[str, object]) -> list[LibraryResult]:
        """One expert seed of each library structure, so the planner knows the bar."""
        out = []
        for s in self.library:
            config = next((dict(c) for c in s.space.seeds
                           if not s.space.violations(dict(c), env)), None)
            if config is None:
                continue
            m = self.backend.evaluate(problem, s, config, VALIDATION_SEEDS)
            out.append(LibraryResult(s.name, json.dumps(config), m.status.value, m.time_ms,
                                     m.message))
        return out


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}_{i}", i + 1
    return out
