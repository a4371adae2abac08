"""Optional tier: the agents against a real local model (Qwen2.5-Coder GGUF via xllamacpp).

Off unless selected: ``python -m pytest -m local_llm tests/llm``. Skips, saying why, when
``xllamacpp`` (``pip install -e '.[local]'``) or the model (``python -m eggsearch
fetch-local-model --size 0.5b|1.5b``, into ``models/`` or ``$EGGSEARCH_MODELS``) is missing.
Asserts on structure (replies parsed, attempts recorded, code that compiles), never on text:
a small model writes weak kernels.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from eggsearch.hardware import load_hardware
from eggsearch.llm.local import model_path, start_server
from eggsearch.llm.session import LLMSession
from eggsearch.llm.settings import Endpoint, Limits, load_agent_settings
from eggsearch.ops import get_op
from eggsearch.rules import load_rules

pytestmark = pytest.mark.local_llm
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=["0.5b", "1.5b"])
def local_model(request):
    pytest.importorskip("xllamacpp", reason="needs the 'local' extra: pip install -e '.[local]'")
    path = model_path(request.param, Path(os.environ.get("EGGSEARCH_MODELS", ROOT / "models")))
    if not path.is_file():
        pytest.skip(f"{path} is not installed: python -m eggsearch fetch-local-model --size "
                    f"{request.param}")
    server, url = start_server(path, _free_port(), ctx_size=8192)
    yield request.param, url
    del server


def test_agents_against_a_local_model(local_model, interpreter_backend, tmp_path):
    size, url = local_model
    base = load_agent_settings().with_client(request_timeout_s=900.0, retries=1)
    settings = replace(base, plans=1, repair_rounds=2 if size == "0.5b" else 1,
                       measure_library=False,
                       max_tokens={**base.max_tokens, "coder": 1500, "planner": 500})
    session = LLMSession(Endpoint(url, "local"), Limits(max_calls=12), tmp_path / "cache",
                         settings=settings)
    op = get_op("softmax")
    problem = op.problem((7, 129), "fp32", interpreter=True)
    hw = load_hardware()["interpreter"]
    env = {**op.variables(problem), **hw.variables()}
    run_dir = tmp_path / "run"
    proposer = session.proposer(interpreter_backend, load_rules(), run_dir,
                                {"hardware": hw.name, "interpreter": True, "baseline_ms": None})
    structures = proposer.propose(op, problem, env)

    usage = session.client.ledger.report()
    assert usage["by_agent"]["planner"]["calls"] >= 1 and usage["total"]["tokens"] > 0
    attempts = [json.loads(line) for line in
                (run_dir / "llm" / "attempts.jsonl").read_text().splitlines()]
    assert attempts, "the coder was never reached"
    statuses = {a["status"] for a in attempts}
    assert statuses <= {"ok", "unsafe", "bad_space", "no_feasible_config", "malformed",
                        "compile_error", "runtime_fault", "incorrect", "timeout"}
    if size == "0.5b":  # plumbing and the repair loop on real, imperfect output
        assert len(attempts) >= 1 and all(a["round"] < 3 for a in attempts)
    else:  # one end-to-end proposal that at least parses and compiles on the interpreter
        assert statuses & {"ok", "incorrect", "runtime_fault", "timeout"}, attempts
    for s in structures:
        assert (run_dir / "structures" / s.name / "structure.json").exists()
