from __future__ import annotations

import pytest
import yaml

from eggsearch.errors import ConfigFileError
from eggsearch.space import config_key, parse_config_key, parse_structure_space

KNOWN = {"M", "N", "elem_bytes", "smem_per_block"}


def space(text: str):
    return parse_structure_space(yaml.safe_load(text), "test", KNOWN)


def test_kinds_expand_to_values():
    s = space("""
params:
  BLOCK: {pow2: [16, 128]}
  stages: {int: [2, 4]}
  EVICT: {choices: ["", "evict_first"]}
""")
    values = {p.name: p.values for p in s.params}
    assert values == {"BLOCK": (16, 32, 64, 128), "stages": (2, 3, 4),
                      "EVICT": ("", "evict_first")}
    assert s.size() == 24


def test_enumerate_keeps_only_feasible():
    s = space("""
params:
  BLOCK: {pow2: [16, 256]}
  num_warps: {choices: [1, 2, 4, 8]}
constraints:
  - {name: fits, expr: "BLOCK * elem_bytes * 64 <= smem_per_block", why: "test"}
  - {name: threads, expr: "BLOCK >= num_warps * 32"}
""")
    feasible, exhaustive = s.enumerate({"elem_bytes": 2, "smem_per_block": 16384})
    assert exhaustive
    assert feasible and all(c["BLOCK"] <= 128 and c["BLOCK"] >= 32 * c["num_warps"]
                            for c in feasible)
    assert len(feasible) == len({config_key(c) for c in feasible})


def test_enumerate_samples_huge_spaces():
    s = space("params: {A: {int: [0, 4000]}, B: {int: [0, 4000]}}")
    feasible, exhaustive = s.enumerate({}, limit=500)
    assert not exhaustive and 0 < len(feasible) <= 500


@pytest.mark.parametrize("text, message", [
    ("params: {B: {pow2: [16, 100]}}", "powers of two"),
    ("params: {B: {pow2: [64, 16]}}", "low <= high"),
    ("params: {B: {range: [1, 2]}}", "unknown key"),
    ("params: {B: {pow2: [16, 64], int: [1, 2]}}", "exactly one"),
    ("params: {B: {choices: []}}", "non-empty"),
    ("params: {B: {choices: [1, 1]}}", "repeat"),
    ("params: {}", "at least one"),
    ("params: {B: {int: [1, 2]}}\nextra: 1", "unknown key"),
    ("params: {B: {int: [1, 2]}}\nconstraints: [{name: c, expr: 'Q > 1'}]", "unknown variable"),
    ("params: {B: {int: [1, 2]}}\nconstraints: [{name: c, expr: 'B.real > 1'}]", "Attribute"),
    ("params: {B: {int: [1, 2]}}\nconstraints: [{expr: 'B > 1'}]", "missing key"),
    ("params: {B: {int: [1, 2]}}\nseeds: [{B: 7}]", "outside"),
    ("params: {B: {int: [1, 2]}, C: {int: [1, 2]}}\nseeds: [{B: 1}]", "missing key"),
    ("params: {B: {int: [1, 2]}}\nseeds: [{B: 1, D: 2}]", "unknown key"),
])
def test_schema_errors(text, message):
    with pytest.raises(ConfigFileError, match=message):
        space(text)


def test_config_key_parses_back():
    config = {"num_warps": 8, "EVICT": "evict_first", "FLATTEN": True, "note": "a:b"}
    assert parse_config_key(config_key(config, "descriptor")) == ("descriptor", config)
