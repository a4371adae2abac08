"""Saved structures (``run --structures DIR``): read back only after the same checks again."""

from __future__ import annotations

import json

import pytest
import yaml

from eggsearch.errors import ConfigFileError, UsageError
from eggsearch.hardware import HARDWARE_VARIABLES
from eggsearch.llm.store import load_saved, save_structure, space_entry
from tests.llm.scripts import GOOD_KERNEL, SPACE

KNOWN = {"M", "N", "elem_bytes", "dtype", "allow_tf32", *HARDWARE_VARIABLES}


@pytest.fixture
def saved(tmp_path):
    root = tmp_path / "run" / "structures"
    save_structure(root, "llm_rows", "softmax", GOOD_KERNEL, space_entry(SPACE, "space"),
                   {"launcher": "launch", "origin": "llm", "plan": {"name": "rows"}})
    return root / "llm_rows"


def test_round_trip_from_the_run_dir_or_the_folder(saved):
    for where in (saved.parents[1], saved.parent, saved):
        (s,) = load_saved(where, "softmax", KNOWN)
        assert (s.name, s.origin, s.launcher) == ("llm_rows", "llm", "launch")
        assert s.space.param_names == ("BLOCK_N", "num_warps")
        assert s.module.endswith("llm_rows/kernel.py")


def test_a_tampered_module_is_screened_again(saved):
    (saved / "kernel.py").write_text("import os\n" + GOOD_KERNEL)
    with pytest.raises(ConfigFileError, match="rejected by the safety screen: .*import os"):
        load_saved(saved, "softmax", KNOWN)


def test_a_module_outside_its_folder_is_refused(saved):
    manifest = json.loads((saved / "structure.json").read_text())
    (saved / "structure.json").write_text(json.dumps({**manifest, "module": "../x.py"}))
    with pytest.raises(ConfigFileError, match="beside it"):
        load_saved(saved, "softmax", KNOWN)


def test_bad_space_or_launcher(saved):
    space = yaml.safe_load((saved / "space.yaml").read_text())
    entry = space["structures"]["llm_rows"]
    entry["constraints"][0]["expr"] = "BLOCK_N >= K"
    (saved / "space.yaml").write_text(yaml.safe_dump(space))
    with pytest.raises(ConfigFileError, match="unknown variable"):
        load_saved(saved, "softmax", KNOWN)
    entry["constraints"][0]["expr"] = "BLOCK_N >= N"
    entry["params"]["GROUP"] = {"choices": [1, 2]}
    entry["seeds"][0]["GROUP"] = 1
    (saved / "space.yaml").write_text(yaml.safe_dump(space))
    with pytest.raises(ConfigFileError, match="no parameter for tunable GROUP"):
        load_saved(saved, "softmax", KNOWN)


def test_nothing_for_this_op(saved, tmp_path):
    with pytest.raises(UsageError, match="no saved structure for rmsnorm"):
        load_saved(saved, "rmsnorm", KNOWN)
    with pytest.raises(UsageError, match="no saved structure for softmax .0 saved"):
        load_saved(tmp_path, "softmax", KNOWN)
