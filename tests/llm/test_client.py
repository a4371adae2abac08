"""The client layer through the real ``openai`` package against the scripted server: retries on
429/5xx/timeouts, limits, accounting, the cache, and the API key kept out of errors and logs."""

from __future__ import annotations

import logging
import time

import pytest

from eggsearch.llm.client import LLMBudgetExhausted, LLMError
from eggsearch.llm.settings import Limits
from tests.llm.conftest import SECRET, fast_settings
from tests.llm.scripted_server import Step

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


def ask(session, agent="planner", stage="one", messages=MESSAGES):
    return session.client.chat(agent, stage, messages, 64)


def test_429_then_success(server, make_session):
    server.add("planner", Step(status=429, error="slow down", headers={"Retry-After": "0"}),
               Step("hi there"))
    session = make_session()
    assert ask(session).text == "hi there"
    tally = session.client.ledger.report()["by_agent"]["planner"]
    assert (tally["calls"], tally["retries"], tally["errors"]) == (2, 1, 1)
    assert tally["prompt_tokens"] == 120 and tally["completion_tokens"] == 60
    # The key was sent to the server, as a bearer token.
    assert server.requests[0]["authorization"] == f"Bearer {SECRET}"


def test_5xx_is_retried_then_given_up(server, make_session):
    server.add("coder", Step(status=503), Step(status=500), Step(status=502))
    session = make_session()
    with pytest.raises(LLMError, match="no reply after 3 attempts; last: HTTP 502"):
        ask(session, "coder")
    assert server.calls("coder") == 3
    tally = session.client.ledger.report()["by_agent"]["coder"]
    assert tally["calls"] == 3 and tally["errors"] == 3 and tally["tokens"] == 0


def test_a_reply_slower_than_the_timeout_is_retried(server, make_session):
    server.add("debugger", Step("too late", delay_s=3.0), Step("in time"))
    session = make_session(settings=fast_settings().with_client(
        request_timeout_s=0.5, retries=2, backoff_s=0.01, backoff_max_s=0.05))
    t0 = time.monotonic()
    assert ask(session, "debugger").text == "in time"
    assert time.monotonic() - t0 < 2.5  # it did not wait for the slow reply
    tally = session.client.ledger.report()["by_agent"]["debugger"]
    assert tally["retries"] == 1 and tally["errors"] == 1


def test_client_errors_are_not_retried_and_never_show_the_key(server, make_session, caplog):
    server.add("planner", Step(status=401, error=f"Incorrect API key provided: {SECRET}"))
    session = make_session()
    with caplog.at_level(logging.DEBUG), pytest.raises(LLMError) as info:
        ask(session)
    assert "HTTP 401" in str(info.value) and "***" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text
    assert server.calls() == 1


def test_the_cache_answers_a_second_client_without_a_request(server, make_session, tmp_path):
    server.add("planner", Step("cached answer"), Step("fresh answer"))
    first = make_session()
    assert ask(first).text == "cached answer"
    assert server.calls() == 1
    second = make_session()  # a new client, the same cache directory
    reply = ask(second)
    assert reply.text == "cached answer" and reply.cached
    assert server.calls() == 1
    totals = second.client.ledger.report()["total"]
    assert totals["calls"] == 0 and totals["cache_hits"] == 1
    # Another prompt is another key.
    other = ask(second, messages=[*MESSAGES, {"role": "user", "content": "more"}])
    assert other.text == "fresh answer" and not other.cached and server.calls() == 2
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 2 and all(SECRET not in p.read_text() for p in files)


def test_call_and_token_limits(server, make_session):
    server.fallback["planner"] = server.fallback["advisor"] = Step(
        "ok", prompt_tokens=150, completion_tokens=50)
    session = make_session(Limits(max_calls=2), cache=False)
    ask(session)
    ask(session)
    with pytest.raises(LLMBudgetExhausted, match="--llm-max-calls"):
        ask(session)
    assert server.calls() == 2
    session = make_session(Limits(max_tokens=300), cache=False)
    ask(session)
    ask(session, "advisor", "two")
    with pytest.raises(LLMBudgetExhausted, match="--llm-max-tokens"):
        ask(session)
    report = session.client.ledger.report()
    assert report["by_stage"]["two"]["tokens"] == 200 and report["total"]["tokens"] == 400
    assert report["by_agent_and_stage"]["advisor/two"]["calls"] == 1


def test_openai_is_imported_only_when_an_llm_is_used():
    import subprocess
    import sys

    code = ("import sys, eggsearch.cli, eggsearch.runner, eggsearch.proposers, "
            "eggsearch.llm.session; print('openai' in sys.modules, 'jinja2' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["False", "False"]
