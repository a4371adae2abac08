"""One client layer over the ``openai`` package, for any OpenAI-compatible server.

It adds what a search needs around ``chat.completions.create``: retries with exponential backoff
on 429, 5xx, timeouts and dropped connections (the package's own retries are off, so each attempt
is counted); per-run limits on calls and tokens; token use, latency and cache hits recorded per
agent and per stage; and the on-disk response cache. ``openai`` is imported on first use only.

The API key is read from its environment variable when the client is built, handed to the
``openai`` client, and scrubbed from every error message and log record this layer produces: it
never reaches a log, a run directory or an error.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from eggsearch.llm.cache import CachedReply, ResponseCache, cache_key
from eggsearch.llm.settings import ClientSettings, Endpoint, Limits

log = logging.getLogger(__name__)

#: Sent with each request so that logs and test servers can tell the agents apart.
AGENT_HEADER = "X-Eggsearch-Agent"


class LLMError(Exception):
    """A request that failed for good (after retries), or a reply that cannot be used."""


class LLMBudgetExhausted(LLMError):
    """The run's --llm-max-calls or --llm-max-tokens is used up."""


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached: bool
    finish_reason: str


@dataclass
class Tally:
    """Counters of one agent in one stage. ``calls`` counts requests sent (retries included)."""

    calls: int = 0
    retries: int = 0
    errors: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tokens"] = self.prompt_tokens + self.completion_tokens
        d["latency_s"] = round(self.latency_s, 3)
        return d


class UsageLedger:
    """Calls, tokens, latency and cache hits, per agent and per stage."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str], Tally] = {}

    def tally(self, agent: str, stage: str) -> Tally:
        return self.tallies.setdefault((agent, stage), Tally())

    def total(self) -> Tally:
        t = Tally()
        for v in self.tallies.values():
            t.add(v)
        return t

    def report(self) -> dict:
        by_agent: dict[str, Tally] = {}
        by_stage: dict[str, Tally] = {}
        for (agent, stage), t in sorted(self.tallies.items()):
            by_agent.setdefault(agent, Tally()).add(t)
            by_stage.setdefault(stage, Tally()).add(t)
        return {"total": self.total().to_dict(),
                "by_agent": {k: v.to_dict() for k, v in by_agent.items()},
                "by_stage": {k: v.to_dict() for k, v in by_stage.items()},
                "by_agent_and_stage": {f"{a}/{s}": t.to_dict()
                                       for (a, s), t in sorted(self.tallies.items())}}


class _RedactKey(logging.Filter):
    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), ()
        return True


class LLMClient:
    """Chat completions with retries, limits, accounting and a cache.

    Args:
        endpoint: server URL, model and the name of the API-key variable.
        settings: timeout, retries, backoff, temperature.
        limits: per-run call and token limits.
        cache: the response cache, or None for none.
        sleep: how to wait between retries (tests pass a fast one).
    """

    def __init__(self, endpoint: Endpoint, settings: ClientSettings, limits: Limits,
                 cache: ResponseCache | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.endpoint, self.settings, self.limits, self.cache = endpoint, settings, limits, cache
        self.ledger = UsageLedger()
        self._sleep = sleep
        self._api_key = os.environ.get(endpoint.api_key_env, "")
        self._openai = None
        if len(self._api_key) >= 4:
            for name in ("openai", "openai._base_client", "httpx", "httpx2", __name__):
                logger = logging.getLogger(name)
                if not any(isinstance(f, _RedactKey) and f.secret == self._api_key
                           for f in logger.filters):
                    logger.addFilter(_RedactKey(self._api_key))

    # -- public ----------------------------------------------------------------------------
    def chat(self, agent: str, stage: str, messages: list[dict], max_tokens: int) -> Reply:
        """One reply for ``messages``; raises :class:`LLMError` when none can be had."""
        sampling = {"temperature": self.settings.temperature, "max_tokens": max_tokens}
        key = cache_key(self.endpoint.model, messages, sampling)
        tally = self.ledger.tally(agent, stage)
        hit = self.cache.get(key) if self.cache else None
        if hit is not None:
            tally.cache_hits += 1
            return Reply(hit.text, hit.prompt_tokens, hit.completion_tokens, 0.0, True,
                         hit.finish_reason)
        last = ""
        for attempt in range(self.settings.retries + 1):
            self._check_limits()
            if attempt:
                tally.retries += 1
            tally.calls += 1
            t0 = time.perf_counter()
            try:
                reply = self._request(agent, messages, sampling)
            except _Retryable as exc:
                tally.errors += 1
                tally.latency_s += time.perf_counter() - t0
                last = str(exc)
                if attempt < self.settings.retries:
                    wait = self._backoff(attempt, exc.retry_after)
                    log.info("%s: %s; retrying in %.1f s", agent, last, wait)
                    self._sleep(wait)
                continue
            except LLMError:
                tally.errors += 1
                raise
            latency = time.perf_counter() - t0
            tally.latency_s += latency
            tally.prompt_tokens += reply.prompt_tokens
            tally.completion_tokens += reply.completion_tokens
            if self.cache:
                self.cache.put(key, reply, self.endpoint.model)
            return Reply(reply.text, reply.prompt_tokens, reply.completion_tokens, latency,
                         False, reply.finish_reason)
        raise LLMError(f"{agent}: no reply after {self.settings.retries + 1} attempts; "
                       f"last: {last}")

    def scrub(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        if len(self._api_key) >= 4:
            return text.replace(self._api_key, "***")
        return text

    # -- internals -------------------------------------------------------------------------
    def _check_limits(self) -> None:
        total = self.ledger.total()
        if self.limits.max_calls is not None and total.calls >= self.limits.max_calls:
            raise LLMBudgetExhausted(f"the run's limit of {self.limits.max_calls} LLM calls "
                                     "(--llm-max-calls) is used up")
        tokens = total.prompt_tokens + total.completion_tokens
        if self.limits.max_tokens is not None and tokens >= self.limits.max_tokens:
            raise LLMBudgetExhausted(f"the run's limit of {self.limits.max_tokens} LLM tokens "
                                     f"(--llm-max-tokens) is used up ({tokens} used)")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        wait = self.settings.backoff_s * 2 ** attempt
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.settings.backoff_max_s)

    def _client(self):
        if self._openai is None:
            import openai

            self._openai = openai.OpenAI(
                base_url=self.endpoint.base_url, api_key=self._api_key or "no-key",
                timeout=self.settings.request_timeout_s, max_retries=0)
        return self._openai

    def _request(self, agent: str, messages: list[dict], sampling: dict) -> CachedReply:
        import openai

        try:
            resp = self._client().chat.completions.create(
                model=self.endpoint.model, messages=messages,
                extra_headers={AGENT_HEADER: agent}, **sampling)
        except openai.APITimeoutError:
            raise _Retryable(f"no reply within {self.settings.request_timeout_s:g} s") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(self.scrub(f"connection failed: {exc}")) from None
        except openai.APIStatusError as exc:
            text = self.scrub(_status_text(exc))
            if exc.status_code == 429 or exc.status_code >= 500:
                raise _Retryable(text, _retry_after(exc)) from None
            raise LLMError(f"{agent}: the server refused the request: {text}") from None
        except openai.OpenAIError as exc:
            raise LLMError(self.scrub(f"{agent}: {type(exc).__name__}: {exc}")) from None
        if not resp.choices:
            return CachedReply("", 0, 0, "no_choices")
        choice = resp.choices[0]
        text = choice.message.content or ""
        usage = resp.usage
        if usage is not None and usage.prompt_tokens is not None:
            prompt, completion = usage.prompt_tokens, usage.completion_tokens or 0
        else:  # a server that reports no usage: count ~4 characters a token
            prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4
            completion = len(text) // 4
        return CachedReply(text, int(prompt), int(completion), str(choice.finish_reason))


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _status_text(exc) -> str:
    body = getattr(exc, "body", None)
    detail = body.get("message") if isinstance(body, dict) else None
    text = f"HTTP {exc.status_code}: {detail or exc.message}"
    return text if len(text) <= 300 else text[:297] + "..."


def _retry_after(exc) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None
