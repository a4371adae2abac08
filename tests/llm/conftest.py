"""Fixtures of the LLM tests: the scripted server, a session wired to it, a shared interpreter
backend; and the optional ``local_llm`` tier, off unless selected with ``-m local_llm``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from eggsearch.llm.session import LLMSession
from eggsearch.llm.settings import Endpoint, Limits, load_agent_settings
from tests.llm.scripted_server import ScriptedServer

SECRET = "sk-test-0123456789-do-not-leak"
KEY_ENV = "EGGSEARCH_TEST_API_KEY"


def pytest_collection_modifyitems(config, items):
    if "local_llm" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="optional tier against a real local model: run with "
                                   "-m local_llm (see README, 'LLM agents')")
    for item in items:
        if "local_llm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def server():
    s = ScriptedServer().start()
    yield s
    s.stop()


def fast_settings(**changes):
    """The shipped settings with quick retries and no library timing."""
    s = load_agent_settings()
    s = s.with_client(request_timeout_s=3.0, retries=2, backoff_s=0.01, backoff_max_s=0.05)
    return replace(s, plans=1, repair_rounds=2, measure_library=False, **changes)


@pytest.fixture
def make_session(server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)

    def make(limits: Limits | None = None, cache: bool = True, settings=None,
             url: str | None = None) -> LLMSession:
        return LLMSession(Endpoint(url or server.url, "scripted-model", KEY_ENV),
                          limits or Limits(),
                          tmp_path / "cache" if cache else None,
                          settings=settings or fast_settings(), sleep=lambda s: None)

    return make


@pytest.fixture(scope="session")
def interpreter_backend():
    from eggsearch.backends import InterpreterBackend

    backend = InterpreterBackend(trial_timeout=60.0)
    backend.start()
    yield backend
    backend.close()
