"""Prompt templates render with a fixture context (a missing variable fails), and the agents
read replies strictly: malformed JSON and a reply without code are asked again, once."""

from __future__ import annotations

import copy
import json

import pytest

from eggsearch.errors import ConfigFileError
from eggsearch.hardware import load_hardware
from eggsearch.llm.agents import Coder, Planner
from eggsearch.llm.context import problem_context
from eggsearch.llm.prompts import PromptLibrary
from eggsearch.llm.replies import MalformedReply, parse_code, parse_json
from eggsearch.ops import get_op
from tests.llm.scripted_server import Step
from tests.llm.scripts import GOOD_KERNEL, SPACE, coder_reply, planner_reply


def problem() -> dict:
    op = get_op("rmsnorm")
    p = op.problem((13, 257), "bf16")
    hw = load_hardware()["H100-SXM"]
    return problem_context(op, p, hw.name, {**op.variables(p), **hw.variables()}, False, 0.0123)


PLAN = {"name": "rows", "categories": ["fusion"], "idea": "one row per program",
        "steps": ["load", "reduce"], "tunables": ["BLOCK_N"]}
REPAIR = {"round": 1, "code": GOOD_KERNEL, "space_yaml": SPACE,
          "error": {"status": "compile_error", "message": "NameError: tl.exp2x"},
          "diagnosis": {"root_cause": "no tl.exp2x", "modification_plan": ["use tl.exp"],
                        "category": "compile_error"}}
CONTEXTS = {
    "planner": {"problem": problem(), "library": [
        {"structure": "one_pass", "config": "{}", "status": "ok", "time": "0.01 ms",
         "message": ""}], "library_names": ["one_pass", "looped"], "n_plans": 2,
        "memory": "- [tried] x: y"},
    "coder": {"problem": problem(), "plan": PLAN, "structure_name": "llm_rows",
              "launcher": "launch", "memory": "(nothing yet)", "repair": REPAIR, "round": 1,
              "rounds": 3},
    "debugger": {"problem": problem(), "plan": PLAN, "structure_name": "llm_rows",
                 "launcher": "launch", "code": GOOD_KERNEL, "space_yaml": SPACE,
                 "error": {"status": "incorrect", "message": "max abs error 0.5"},
                 "memory": "(nothing yet)"},
    "advisor": {"problem": problem(), "structures": [
        {"name": "llm_rows", "origin": "llm", "params": [
            {"name": "BLOCK_N", "kind": "pow2", "domain": [256, 512]}],
         "constraints": ["whole_row: BLOCK_N >= N"]}],
        "history": [{"trial": 0, "structure": "llm_rows", "config": {"BLOCK_N": 256},
                     "status": "ok", "time": "0.01 ms", "message": ""}],
        "max_configs": 3, "memory_one": "- [accepted] llm_rows: ok",
        "memory_two": "(nothing yet)"},
    "reask": {"agent": "coder", "issue": "no ```python block"},
}


def context_for(template: str) -> dict:
    agent = template.split(".")[0].lstrip("_")
    return CONTEXTS.get(agent, CONTEXTS["coder"])  # _problem.j2: any agent's context


def test_every_template_renders_with_the_fixture_context():
    lib = PromptLibrary()
    names = lib.names()
    assert {f"{a}.{p}.j2" for a in ("planner", "coder", "debugger", "advisor")
            for p in ("system", "user")} | {"reask.j2", "_problem.j2"} <= set(names)
    for name in names:
        text = lib.render(name, context_for(name))
        assert text.strip() and "Undefined" not in text, name
    coder = lib.messages("coder", CONTEXTS["coder"])[1]["content"]
    assert "no tl.exp2x" in coder and "llm_rows" in coder and "NameError" in coder
    assert "def launch(x, *, out, BLOCK_N, num_warps)" in lib.render("coder.system.j2",
                                                                     CONTEXTS["coder"])


@pytest.mark.parametrize("agent", ["planner", "coder", "debugger", "advisor"])
def test_a_missing_variable_fails_the_render(agent):
    lib = PromptLibrary()
    for key in CONTEXTS[agent]:
        context = {k: v for k, v in CONTEXTS[agent].items() if k != key}
        with pytest.raises(ConfigFileError, match="undefined"):
            lib.messages(agent, context)
    nested = copy.deepcopy(CONTEXTS[agent])
    del nested["problem"]["tolerance"]
    with pytest.raises(ConfigFileError, match="tolerance"):
        lib.messages(agent, nested)


def test_parse_json_finds_and_checks_the_object():
    schema = {"root_cause": str, "modification_plan": [str], "category?": ("a", "b")}
    good = {"root_cause": "x", "modification_plan": ["y"]}
    assert parse_json("Sure!\n```json\n" + json.dumps(good) + "\n```\nbye", schema) == good
    assert parse_json("prose {not json} then " + json.dumps(good), schema) == good
    with pytest.raises(MalformedReply, match="does not parse"):
        parse_json('{"root_cause": "x", "modification_plan": [}', schema)
    with pytest.raises(MalformedReply, match="no JSON object"):
        parse_json("I cannot help with that.", schema)
    with pytest.raises(MalformedReply, match="lacks the key 'modification_plan'"):
        parse_json('{"root_cause": "x"}', schema)
    with pytest.raises(MalformedReply, match=r"modification_plan\[1\] must be a str"):
        parse_json('{"root_cause": "x", "modification_plan": ["a", 3]}', schema)
    with pytest.raises(MalformedReply, match="category must be one of a, b"):
        parse_json('{"root_cause": "x", "modification_plan": [], "category": "c"}', schema)


def test_parse_code_needs_both_blocks():
    reply = parse_code(coder_reply(GOOD_KERNEL))
    assert reply.source == GOOD_KERNEL and reply.space_yaml == SPACE
    untagged = f"```\n{GOOD_KERNEL}```\n```\n{SPACE}```"
    assert parse_code(untagged).source == GOOD_KERNEL
    with pytest.raises(MalformedReply, match="no ```python"):
        parse_code("Use an online softmax with a running max.")
    with pytest.raises(MalformedReply, match="no ```yaml"):
        parse_code(f"```python\n{GOOD_KERNEL}```")


def test_malformed_json_is_asked_again_once(server, make_session):
    server.add("planner", Step('{"plans": [{"name": "rows", "categories": ['),
               Step(planner_reply("rows", "online")))
    session = make_session()
    agent = Planner(session.client, session.prompts, session.settings)
    plans = agent.plan(CONTEXTS["planner"])
    assert [p.name for p in plans] == ["rows", "online"]
    assert server.calls("planner") == 2
    second = server.requests[1]["body"]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert "does not parse" in second[-1]["content"]
    # Twice malformed: the agent gives up with the reason.
    server.add("planner", Step("no"), Step('{"plans": "many"}'))
    with pytest.raises(MalformedReply, match="plans must be a JSON list"):
        Planner(session.client, session.prompts, session.settings).plan(
            {**CONTEXTS["planner"], "n_plans": 3})


def test_a_reply_without_a_code_block_is_asked_again(server, make_session):
    server.add("coder", Step("You should use an online softmax."),
               Step(coder_reply(GOOD_KERNEL)))
    session = make_session()
    reply = Coder(session.client, session.prompts, session.settings).write(CONTEXTS["coder"])
    assert reply.source == GOOD_KERNEL
    assert "no ```python code block" in server.requests[1]["body"]["messages"][-1]["content"]
    assert "```python" in server.requests[1]["body"]["messages"][-1]["content"]


def test_a_broken_template_is_a_one_line_config_error(tmp_path):
    for name in PromptLibrary().names():
        (tmp_path / name).write_text((PromptLibrary().directory / name).read_text())
    (tmp_path / "coder.user.j2").write_text("{% for x in %}")
    with pytest.raises(ConfigFileError, match="coder.user.j2 line 1"):
        PromptLibrary(tmp_path).check(["coder.user.j2"])
    (tmp_path / "reask.j2").unlink()
    with pytest.raises(ConfigFileError, match="reask.j2: prompt template missing"):
        PromptLibrary(tmp_path).check(["reask.j2"])
