"""Settings of the LLM layer: the endpoint (from the command line) and the agents' knobs
(``prompts/agents.yaml``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from eggsearch.config_files import PROMPTS_DIR, check_keys, load_yaml
from eggsearch.errors import ConfigFileError, UsageError

AGENTS = ("planner", "coder", "debugger", "advisor")


@dataclass(frozen=True)
class Endpoint:
    """Where the model is: an OpenAI-compatible server, a model name, and the *name* of the
    environment variable that holds the API key (the key itself is read only when a request is
    made, and never stored)."""

    base_url: str | None
    model: str
    api_key_env: str = "OPENAI_API_KEY"

    def describe(self) -> dict:
        """What may be recorded about the endpoint (no key)."""
        return {"base_url": self.base_url or "(the openai package's default)",
                "model": self.model, "api_key_env": self.api_key_env}


@dataclass(frozen=True)
class Limits:
    """Per-run limits: network calls and tokens (prompt + completion). None: no limit."""

    max_calls: int | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class ClientSettings:
    request_timeout_s: float = 300.0
    retries: int = 3
    backoff_s: float = 2.0
    backoff_max_s: float = 30.0
    temperature: float = 0.0


@dataclass(frozen=True)
class AgentSettings:
    """Everything in ``prompts/agents.yaml``."""

    client: ClientSettings = field(default_factory=ClientSettings)
    max_tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AGENTS, 1000))
    plans: int = 2
    repair_rounds: int = 3
    measure_library: bool = True
    advise_every: int = 8
    advise_max_configs: int = 4
    advise_history: int = 24
    memory_entries: int = 16
    memory_chars: int = 400

    def with_client(self, **changes) -> AgentSettings:
        return replace(self, client=replace(self.client, **changes))


def load_agent_settings(path: Path | None = None) -> AgentSettings:
    """Read ``prompts/agents.yaml`` with a strict schema."""
    path = Path(path or PROMPTS_DIR / "agents.yaml")
    data = check_keys(load_yaml(path), str(path),
                      required=["client", "agents", "proposer", "advisor", "memory"])
    c = check_keys(data["client"], f"{path}: client",
                   optional=["request_timeout_s", "retries", "backoff_s", "backoff_max_s",
                             "temperature"])
    agents = check_keys(data["agents"], f"{path}: agents", required=AGENTS)
    p = check_keys(data["proposer"], f"{path}: proposer",
                   optional=["plans", "repair_rounds", "measure_library"])
    a = check_keys(data["advisor"], f"{path}: advisor",
                   optional=["every", "max_configs", "history"])
    m = check_keys(data["memory"], f"{path}: memory", optional=["max_entries", "max_chars"])
    try:
        max_tokens = {}
        for name in AGENTS:
            check_keys(agents[name], f"{path}: agents.{name}", required=["max_tokens"])
            max_tokens[name] = _positive(agents[name]["max_tokens"], f"agents.{name}")
        defaults = AgentSettings()
        return AgentSettings(
            client=ClientSettings(**{k: float(v) if k != "retries" else int(v)
                                     for k, v in c.items()}),
            max_tokens=max_tokens,
            plans=_positive(p.get("plans", defaults.plans), "proposer.plans"),
            repair_rounds=int(p.get("repair_rounds", defaults.repair_rounds)),
            measure_library=bool(p.get("measure_library", defaults.measure_library)),
            advise_every=int(a.get("every", defaults.advise_every)),
            advise_max_configs=int(a.get("max_configs", defaults.advise_max_configs)),
            advise_history=_positive(a.get("history", defaults.advise_history), "history"),
            memory_entries=_positive(m.get("max_entries", defaults.memory_entries),
                                     "memory.max_entries"),
            memory_chars=_positive(m.get("max_chars", defaults.memory_chars),
                                   "memory.max_chars"))
    except (TypeError, ValueError) as exc:
        raise ConfigFileError(f"{path}: {exc}") from None


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def endpoint_from_args(args) -> Endpoint:
    """The endpoint named by ``run``'s flags; a :class:`UsageError` when there is none.

    An endpoint is configured by ``--llm-base-url`` (any OpenAI-compatible server; a local one
    needs no key) or by an API key in the ``--llm-api-key-env`` variable (OpenAI itself). A
    model must be named either way.
    """
    key_env = args.llm_api_key_env or "OPENAI_API_KEY"
    if not args.llm_base_url and not os.environ.get(key_env):
        raise UsageError(f"--proposer {args.proposer} needs an LLM endpoint: give "
                         f"--llm-base-url URL (an OpenAI-compatible server) or put an API key "
                         f"in ${key_env}")
    if args.llm_base_url and not re.match(r"https?://[^\s/]+", args.llm_base_url):
        raise UsageError(f"--llm-base-url '{args.llm_base_url}': expected http://HOST[:PORT]/...")
    if not args.llm_model:
        raise UsageError(f"--proposer {args.proposer} needs --llm-model NAME")
    for flag in ("llm_max_calls", "llm_max_tokens"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1")
    return Endpoint(args.llm_base_url, args.llm_model, key_env)
