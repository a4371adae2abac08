"""``run --proposer llm|both`` end to end on the interpreter, against the scripted server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eggsearch.cli import main
from tests.llm.conftest import KEY_ENV, SECRET
from tests.llm.scripted_server import Step
from tests.llm.scripts import GOOD_KERNEL, advisor_reply, coder_reply, planner_reply

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, key: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", KEY_ENV)}
    env.update(TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    if key:
        env[KEY_ENV] = SECRET
    return subprocess.run([sys.executable, "-m", "eggsearch", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


@pytest.mark.parametrize("args, message", [
    (["--proposer", "llm"], "needs an LLM endpoint: give --llm-base-url URL"),
    (["--proposer", "both", "--llm-base-url", "ftp://x"], "--llm-base-url 'ftp://x'"),
    (["--proposer", "both", "--llm-base-url", "http://127.0.0.1:9/v1"], "needs --llm-model"),
    (["--proposer", "both", "--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m",
      "--llm-max-calls", "0"], "--llm-max-calls must be at least 1"),
    (["--proposer", "gpt"], "invalid choice: 'gpt'"),
    (["--structures", "no/such/dir"], "not a directory"),
], ids=["no_endpoint", "bad_url", "no_model", "no_calls", "bad_proposer", "no_structures"])
def test_bad_llm_input_one_line_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "run"
    try:
        code = main(["run", "--op", "softmax", "--backend", "interpreter", "--out", str(out),
                     *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def in_process(monkeypatch, capsys, *args: str) -> tuple[int, dict]:
    """``main`` in this process (no interpreter start-up: the tests stay fast)."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    code = main(list(args))
    return code, json.loads(capsys.readouterr().out)


def test_both_proposers_compete_in_one_study(server, tmp_path, monkeypatch, capsys):
    server.add("planner", Step(planner_reply("rows")))
    server.add("coder", Step(coder_reply(GOOD_KERNEL)))
    server.fallback["advisor"] = Step(advisor_reply("llm_rows", {"BLOCK_N": 1024,
                                                                  "num_warps": 2}))
    llm = ["--llm-base-url", server.url, "--llm-model", "scripted", "--llm-api-key-env", KEY_ENV]
    a = tmp_path / "a"
    r = cli("-v", "run", "--op", "softmax", "--backend", "interpreter", "--proposer", "both",
            "--trials", "9", "--out", str(a), "--json", *llm)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert "llm_rows" in summary["plan"]["structures"]
    assert {"one_pass", "online"} & set(summary["plan"]["structures"])
    records = lines(a / "trials.jsonl")
    ours = [rec for rec in records if rec["origin"] == "llm"]
    assert ours and ours[0]["structure"] == "llm_rows" and ours[0]["status"] == "ok"
    assert {rec["origin"] for rec in records} == {"library", "llm"}
    # The advisor ran after trial 8; its config was enqueued and measured as trial 9.
    assert server.calls("advisor") == 1
    assert records[-1].get("advised") and records[-1]["config"] == {"BLOCK_N": 1024,
                                                                    "num_warps": 2}
    usage = summary["llm"]["usage"]["by_agent"]
    assert set(usage) == {"planner", "coder", "advisor"}
    for agent, tally in usage.items():
        assert tally["calls"] == 1 and tally["tokens"] == 180, agent
        assert tally["latency_s"] > 0 and tally["cache_hits"] == 0
    assert summary["llm"]["usage"]["by_stage"]["two"]["calls"] == 1
    assert summary["llm"]["structures"] == ["llm_rows"]
    assert (a / "structures" / "llm_rows" / "structure.json").exists()
    assert json.loads((a / "settings.json").read_text())["proposer"] == "both"
    # The key reached the server and nothing else.
    assert server.requests[0]["authorization"] == f"Bearer {SECRET}"
    for path in a.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in r.stdout + r.stderr

    # A second run with the first one's cache sends no request.
    sent = server.calls()
    code, again = in_process(
        monkeypatch, capsys, "run", "--op", "softmax", "--backend", "interpreter", "--proposer",
        "both", "--trials", "2", "--out", str(tmp_path / "b"), "--json", "--llm-cache",
        str(a / "llm" / "cache"), *llm)
    assert code == 0 and server.calls() == sent
    usage = again["llm"]["usage"]
    assert usage["total"]["calls"] == 0 and usage["total"]["cache_hits"] == 2
    assert usage["by_agent"]["coder"]["cache_hits"] == 1
    assert "llm_rows" in again["plan"]["structures"]

    # The saved structure is tuned elsewhere without any LLM: --structures.
    c = tmp_path / "c"
    code, summary = in_process(
        monkeypatch, capsys, "run", "--op", "softmax", "--backend", "interpreter",
        "--structures", str(a), "--structure", "one_pass", "--trials", "4", "--sampler", "grid",
        "--out", str(c), "--json")
    assert code == 0
    assert summary["plan"]["structures"] == ["one_pass", "llm_rows"] and "llm" not in summary
    assert any(rec["structure"] == "llm_rows" and rec["status"] == "ok"
               for rec in lines(c / "trials.jsonl"))
    assert (c / "structures" / "llm_rows" / "kernel.py").read_text() == GOOD_KERNEL
    assert server.calls() == sent


def test_llm_only_run_with_no_correct_structure_reports_and_exits_1(server, tmp_path,
                                                                    monkeypatch, capsys):
    server.add("planner", Step(planner_reply("rows")))
    server.fallback["coder"] = Step("Use an online softmax.")  # never any code
    out = tmp_path / "run"
    monkeypatch.setenv(KEY_ENV, SECRET)
    code = main(["run", "--op", "softmax", "--backend", "interpreter", "--proposer", "llm",
                 "--out", str(out), "--llm-base-url", server.url, "--llm-model", "scripted",
                 "--llm-api-key-env", KEY_ENV, "--llm-max-calls", "5", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and summary["best"] is None and summary["trials"]["total"] == 0
    assert summary["llm"]["structures"] == []
    # 1 planner call, then 4 coder calls: the --llm-max-calls limit of 5 ends stage one.
    assert server.calls("planner") == 1 and server.calls("coder") == 4
    assert summary["llm"]["usage"]["total"]["calls"] == 5
    assert [a["status"] for a in lines(out / "llm" / "attempts.jsonl")] == ["malformed"] * 2
    assert any("--llm-max-calls" in e["detail"] for e in summary["llm"]["memory"]["one"])
    assert (out / "summary.json").exists()
