"""The tuner's advisor hook: what is enqueued, what is refused, and how narrowing works."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from eggsearch.expressions import parse
from eggsearch.plan import SearchPlan, key_of
from eggsearch.rules import load_rules
from eggsearch.space import Constraint, Param, StructureSpace
from eggsearch.structures import Structure
from eggsearch.tuner import Advice, Narrowing, make_sampler, open_study, take_advice


def plan() -> SearchPlan:
    space = StructureSpace(
        (Param("BLOCK_N", "pow2", (64, 128, 256, 512, 1024)),
         Param("num_warps", "pow2", (1, 2, 4, 8)),
         Param("EVICT", "choices", ("", "evict_first"))),
        (Constraint("whole_row", parse("BLOCK_N >= N")),))
    s = Structure("softmax", "llm_rows", "x.py", "launch", space, "llm")
    return SearchPlan([s], load_rules(), {"M": 7, "N": 129, "elem_bytes": 2, "dtype": "fp16"})


def waiting(study: optuna.Study) -> list[dict]:
    return [t.system_attrs["fixed_params"]
            for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]


def test_only_new_feasible_in_domain_configs_are_enqueued():
    p = plan()
    study = open_study("a", "sqlite:///:memory:", make_sampler("tpe", 0, 10))
    good = {"BLOCK_N": 256, "num_warps": 4, "EVICT": ""}
    measured = {"BLOCK_N": 512, "num_warps": 4, "EVICT": ""}
    advice = Advice(configs=(
        ("llm_rows", good),
        ("llm_rows", measured),                                        # measured already
        ("llm_rows", {"BLOCK_N": 64, "num_warps": 4, "EVICT": ""}),    # outside the domain
        ("llm_rows", {"BLOCK_N": 256, "num_warps": 4}),                # a param missing
        ("one_pass", good),                                            # unknown structure
    ))
    keys = take_advice(study, p, advice, {key_of("llm_rows", measured): None})
    assert keys == {key_of("llm_rows", good)}
    assert waiting(study) == [p.encode("llm_rows", good)]


def test_narrowing_shrinks_ordinal_domains_only():
    p = plan()
    study = open_study("b", "sqlite:///:memory:", make_sampler("tpe", 0, 10))
    assert p.plans["llm_rows"].domains["BLOCK_N"] == (256, 512, 1024)  # BLOCK_N >= 129
    take_advice(study, p, Advice(narrow=(
        Narrowing("llm_rows", "BLOCK_N", 300, 2048),
        Narrowing("llm_rows", "num_warps", 16, 32),       # would empty it: ignored
        Narrowing("llm_rows", "EVICT", 0, 1),             # not ordinal: ignored
        Narrowing("nope", "BLOCK_N", 0, 1))), {})
    domains = p.plans["llm_rows"].domains
    assert domains["BLOCK_N"] == (512, 1024) and domains["num_warps"] == (1, 2, 4, 8)
    assert domains["EVICT"] == ("", "evict_first")
    for _ in range(6):  # the sampler now stays inside the narrowed range
        structure, config = p.suggest(study.ask())
        assert config["BLOCK_N"] in (512, 1024)
