"""Stage one end to end against the scripted server: plan -> code -> screen -> isolated check ->
debugger/coder repairs; then stage two tunes the accepted structure with the advisor's help."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from eggsearch.hardware import HARDWARE_VARIABLES, load_hardware
from eggsearch.llm.store import load_saved
from eggsearch.ops import get_op
from eggsearch.plan import SearchPlan
from eggsearch.roofline import roofline
from eggsearch.rules import load_rules
from eggsearch.tuner import Budget, enqueue_start, make_sampler, open_study, tune
from tests.llm.conftest import fast_settings
from tests.llm.scripted_server import Step
from tests.llm.scripts import (
    COMPILE_ERROR_KERNEL,
    DEBUGGER_REPLY,
    GOOD_KERNEL,
    WRONG_DEBUGGER_REPLY,
    WRONG_KERNEL,
    advisor_reply,
    coder_reply,
    planner_reply,
    unsafe_kernel,
)


@pytest.fixture(scope="module")
def softmax():
    op = get_op("softmax")
    problem = op.problem((23, 301), "fp16", interpreter=True)
    hw = load_hardware()["interpreter"]
    return op, problem, hw, {**op.variables(problem), **hw.variables()}


def propose(session, backend, softmax, run_dir: Path):
    op, problem, hw, env = softmax
    proposer = session.proposer(backend, load_rules(), run_dir,
                                {"hardware": hw.name, "interpreter": True, "baseline_ms": None})
    return proposer.propose(op, problem, env)


def attempts(run_dir: Path) -> list[dict]:
    path = run_dir / "llm" / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_correct_template_is_saved_with_its_plan_and_tuned(
        server, make_session, interpreter_backend, softmax, tmp_path):
    op, problem, hw, env = softmax
    server.add("planner", Step(planner_reply("rows")))
    server.add("coder", Step(coder_reply(GOOD_KERNEL)))
    advised = [{"BLOCK_N": 4096, "num_warps": 1}, {"BLOCK_N": 2048, "num_warps": 8}]
    server.add("advisor", Step(advisor_reply("llm_rows", *advised,
                                             {"BLOCK_N": 128, "num_warps": 1})))
    session = make_session(settings=fast_settings(advise_every=2))
    run_dir = tmp_path / "run"
    structures = propose(session, interpreter_backend, softmax, run_dir)

    assert [(s.name, s.origin) for s in structures] == [("llm_rows", "llm")]
    folder = run_dir / "structures" / "llm_rows"
    assert Path(structures[0].module) == (folder / "kernel.py").resolve()
    manifest = json.loads((folder / "structure.json").read_text())
    assert manifest["plan"]["name"] == "rows" and manifest["plan"]["categories"] == ["fusion"]
    assert manifest["sha256"] == hashlib.sha256((folder / "kernel.py").read_bytes()).hexdigest()
    assert manifest["validation"]["measurement"]["status"] == "ok"
    assert manifest["validation"]["config"] == {"BLOCK_N": 512, "num_warps": 4}
    assert [a["status"] for a in attempts(run_dir)] == ["ok"]
    known = set(op.variables(problem)) | set(HARDWARE_VARIABLES)
    assert [s.name for s in load_saved(run_dir, "softmax", known)] == ["llm_rows"]

    # Stage two: the structure is tuned, and the advisor's configs are enqueued and measured.
    plan = SearchPlan(structures, load_rules(), env)
    study = open_study("s", f"sqlite:///{tmp_path / 'study.db'}", make_sampler("tpe", 0, 5))
    enqueue_start(study, plan, "tpe", 5)
    records = []
    advisor = session.advisor(_problem(session, softmax))
    tune(study, plan, problem, interpreter_backend, roofline(op, problem, hw), Budget(5), 0,
         records.append, advisor=advisor)
    assert len(records) == 5 and all(r["status"] in ("ok", "duplicate") for r in records)
    measured = [r["config"] for r in records if r.get("advised")]
    assert measured and all(c in advised for c in measured)
    assert server.calls("advisor") >= 1 and advisor.enqueued >= 1
    two = session.memory_two.to_list()
    assert any(e["kind"] == "rejected" and "BLOCK_N=128 is outside" in e["detail"] for e in two)


def _problem(session, softmax) -> dict:
    from eggsearch.llm.context import problem_context

    op, problem, hw, env = softmax
    return problem_context(op, problem, hw.name, env, True)


@pytest.mark.parametrize("broken, diagnosis, status", [
    (COMPILE_ERROR_KERNEL, DEBUGGER_REPLY, "compile_error"),
    (WRONG_KERNEL, WRONG_DEBUGGER_REPLY, "incorrect"),
], ids=["compile_error", "wrong_result"])
def test_debugger_and_coder_repair_broken_code(
        server, make_session, interpreter_backend, softmax, tmp_path, broken, diagnosis, status):
    server.add("planner", Step(planner_reply("rows")))
    server.add("coder", Step(coder_reply(broken)), Step(coder_reply(GOOD_KERNEL)))
    server.add("debugger", Step(diagnosis))
    run_dir = tmp_path / "run"
    structures = propose(make_session(), interpreter_backend, softmax, run_dir)

    assert [s.name for s in structures] == ["llm_rows"]
    assert [a["status"] for a in attempts(run_dir)] == [status, "ok"]
    assert server.calls("debugger") == 1 and server.calls("coder") == 2
    # The debugger saw the error; the coder's repair prompt carries its diagnosis and the code.
    debug_prompt = server.requests[2]["body"]["messages"][-1]["content"]
    assert status in debug_prompt
    repair_prompt = server.requests[-1]["body"]["messages"][-1]["content"]
    assert json.loads(diagnosis)["root_cause"] in repair_prompt
    assert broken.splitlines()[-1].strip() in repair_prompt
    # The saved module is the repaired one.
    saved = (run_dir / "structures" / "llm_rows" / "kernel.py").read_text()
    assert saved == GOOD_KERNEL


def test_unsafe_code_is_rejected_before_import(
        server, make_session, interpreter_backend, softmax, tmp_path):
    marker = tmp_path / "imported.txt"
    server.add("planner", Step(planner_reply("rows")))
    server.add("coder", Step(coder_reply(unsafe_kernel(str(marker)))),
               Step(coder_reply(GOOD_KERNEL)))
    run_dir = tmp_path / "run"
    structures = propose(make_session(), interpreter_backend, softmax, run_dir)

    assert not marker.exists()  # never imported, here or in the worker
    assert [s.name for s in structures] == ["llm_rows"]
    first, second = attempts(run_dir)
    assert first["status"] == "unsafe" and "import os is not allowed" in first["message"]
    assert "`open` is not allowed" in first["message"]
    assert second["status"] == "ok"
    assert (run_dir / "llm" / "attempts" / "llm_rows_r0.rejected.txt").exists()
    assert not (run_dir / "llm" / "attempts" / "llm_rows_r0.py").exists()
    assert server.calls("debugger") == 0  # the reasons go back to the coder directly
    assert "import os is not allowed" in server.requests[-1]["body"]["messages"][-1]["content"]


def test_gives_up_after_the_repair_rounds(server, make_session, interpreter_backend, softmax,
                                          tmp_path):
    server.add("planner", Step(planner_reply("rows")))
    server.add("coder", *[Step(coder_reply(unsafe_kernel(str(tmp_path / "m"))))] * 3)
    run_dir = tmp_path / "run"
    session = make_session()
    assert propose(session, interpreter_backend, softmax, run_dir) == []
    assert [a["status"] for a in attempts(run_dir)] == ["unsafe"] * 3  # 1 + 2 repair rounds
    assert not (run_dir / "structures").exists()
    kinds = [e["kind"] for e in session.memory_one.to_list()]
    assert kinds.count("rejected") == 3


def test_second_run_with_the_cache_sends_no_request(server, make_session, interpreter_backend,
                                                    softmax, tmp_path):
    server.add("planner", Step(planner_reply("rows")))
    server.add("coder", Step(coder_reply(COMPILE_ERROR_KERNEL)), Step(coder_reply(GOOD_KERNEL)))
    server.add("debugger", Step(DEBUGGER_REPLY))
    first = propose(make_session(), interpreter_backend, softmax, tmp_path / "a")
    sent = server.calls()
    assert sent == 4
    again = make_session()
    second = propose(again, interpreter_backend, softmax, tmp_path / "b")
    assert server.calls() == sent  # nothing new reached the server
    assert [s.name for s in second] == [s.name for s in first] == ["llm_rows"]
    usage = again.client.ledger.report()
    assert usage["total"]["calls"] == 0 and usage["total"]["cache_hits"] == 4
    assert usage["by_agent"]["coder"]["cache_hits"] == 2
