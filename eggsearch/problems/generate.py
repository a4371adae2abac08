"""The offline proposer for problem files: trace, fuse, write the answer and its search space.

:func:`build` traces the reference on the meta device, partitions it into fused groups, writes
each group's kernels and the whole ``ModelNew`` module, and derives one search space whose
parameters are every group's tunables prefixed ``g<i>_``. It *covers* a problem when nothing
that is the problem's main computation (see :mod:`eggsearch.problems.anticheat`) is left in
PyTorch; an uncovered problem gets no answer (the verifier would reject it as a cheat).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from eggsearch.errors import UsageError
from eggsearch.problems.anticheat import OpRecorder, computing, forbidden_calls
from eggsearch.problems.convkernel import conv_code
from eggsearch.problems.emit import module_source
from eggsearch.problems.fusion import Plan, describe, partition
from eggsearch.problems.graph import Traced, op_name, trace
from eggsearch.problems.kernels import GroupCode, gemm_code, pointwise_code
from eggsearch.problems.loader import ProblemModule, load_problem, one_line
from eggsearch.problems.rowkernel import row_code

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generated:
    """An answer module's source, its search space (``search_spaces`` form) and the default
    (expert seed) configuration."""

    source: str
    space: dict
    config: dict
    groups: tuple[str, ...]
    leftovers: tuple[str, ...]


def group_code(g) -> GroupCode:
    return {"gemm": gemm_code, "conv": conv_code, "row": row_code,
            "pointwise": pointwise_code}[g.kind](g)


def reference_ops(problem: ProblemModule) -> list[str]:
    import torch

    with torch.device("meta"), torch.no_grad():
        model = problem.build(0, "meta")
        inputs = problem.inputs(0, "meta")
        with OpRecorder() as rec:
            model(*inputs)
    return rec.ops


def _prefix(expr: str, names: list[str], p: str) -> str:
    for n in sorted(names, key=len, reverse=True):
        expr = re.sub(rf"\b{re.escape(n)}\b", p + n, expr)
    return expr


def space_of(codes: dict[int, GroupCode]) -> dict:
    """One structure's search space over every group's tunables."""
    params, constraints, seeds = {}, [], []
    n_seeds = max((len(c.seeds) for c in codes.values()), default=0)
    for c in codes.values():
        p = f"g{c.gid}_"
        names = list(c.tunables)
        params.update({p + k: v for k, v in c.tunables.items()})
        constraints += [{"name": p + k["name"], "expr": _prefix(k["expr"], names, p)}
                        for k in c.constraints]
    for i in range(n_seeds):
        seed = {}
        for c in codes.values():
            s = c.seeds[min(i, len(c.seeds) - 1)]
            seed.update({f"g{c.gid}_{k}": v for k, v in s.items()})
        seeds.append(seed)
    return {"params": params, "constraints": constraints, "seeds": seeds}


def default_config(space: dict, env: dict) -> dict:
    """Each group's first seed that meets its constraints (the seeds end with small tiles)."""
    from eggsearch.space import parse_structure_space

    parsed = parse_structure_space({**space, "seeds": []}, "generated space", set(env))
    config = {}
    groups = sorted({k.split("_", 1)[0] for k in space["params"]})
    for gp in groups:
        mine = [c for c in parsed.constraints if c.name.startswith(gp + "_")]
        for seed in space["seeds"]:
            part = {k: v for k, v in seed.items() if k.startswith(gp + "_")}
            scope = {**env, **part}
            if all(c.holds(scope) for c in mine):
                config.update(part)
                break
        else:
            raise UsageError(f"no seed configuration of group {gp} fits this problem")
    return config


def build(problem: ProblemModule, env: dict, title: str = "") -> Generated:
    """Trace and fuse ``problem`` at its current sizes; raises UsageError when not covered."""
    try:
        traced: Traced = trace(problem)
    except Exception as exc:
        raise UsageError(f"{problem.path}: cannot trace the reference: {one_line(exc)}") \
            from None
    plan: Plan = partition(traced)
    left = [n for n in traced.nodes if n.op == "call_function" and n not in plan.group_of]
    left_ops = [op_name(n) for n in left if op_name(n).startswith(("aten.", "prims."))]
    bad = forbidden_calls(left_ops, reference_ops(problem))
    if bad:
        raise UsageError(f"{problem.path}: not covered: {bad[0]} would stay in PyTorch")
    try:
        codes = {g.gid: group_code(g) for g in plan.groups}
    except NotImplementedError as exc:
        raise UsageError(f"{problem.path}: not covered: {exc}") from None
    space = space_of(codes)
    config = default_config(space, env)
    import torch

    params = _param_names(problem, torch)
    positions = [i for i, x in enumerate(_meta_inputs(problem)) if isinstance(x, torch.Tensor)]
    source = module_source(problem.path, plan, codes, config, positions, params,
                           title or f"ModelNew for {problem.path.name}")
    return Generated(source, space, config, tuple(describe(plan)),
                     tuple(sorted(computing(left_ops))))


def _param_names(problem: ProblemModule, torch) -> set[str]:
    with torch.device("meta"):
        return {n for n, _ in problem.build(0, "meta").named_parameters()}


def _meta_inputs(problem: ProblemModule) -> list:
    import torch

    with torch.device("meta"):
        return problem.inputs(0, "meta")


def hardware_env(device: str) -> dict:
    """The hardware variables constraints may use, for the CPU interpreter or this GPU."""
    from eggsearch.hardware import load_hardware, spec_for_device

    specs = load_hardware()
    if not device.startswith("cuda"):
        return specs["interpreter"].variables()
    import torch

    props = torch.cuda.get_device_properties(0)
    hw = spec_for_device({"name": props.name, "num_sms": props.multi_processor_count}, specs)
    return hw.variables()


def generate_answer(problem_path: Path, out_dir: Path, settings, tune_trials: int = 0) -> Path:
    """Write the answer to ``problem_path`` into ``out_dir`` (same file name); with
    ``tune_trials`` > 0 its configuration comes from a study (:mod:`eggsearch.problems.run`).
    """
    if tune_trials > 0:
        from eggsearch.problems.run import tune_problem

        return tune_problem(problem_path, out_dir, settings, tune_trials)
    problem = load_problem(problem_path, settings.small)
    gen = build(problem, hardware_env(settings.device))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / Path(problem_path).name
    path.write_text(gen.source)
    log.info("answer for %s: %s", problem_path, "; ".join(gen.groups))
    return path
