"""Test set-up: every test runs Triton kernels on its CPU interpreter unless a GPU is asked for."""

from __future__ import annotations

import os

# Must precede the first import of triton anywhere in the test session.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from eggsearch.backends.interpreter_fixes import apply_interpreter_fixes  # noqa: E402

apply_interpreter_fixes()


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch missing is a broken install, not a skip
        has_gpu = False
    if has_gpu and os.environ.get("TRITON_INTERPRET") != "1":
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run with TRITON_INTERPRET=0 on a GPU host)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
