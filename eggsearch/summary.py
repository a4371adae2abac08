"""The result of a run, built from the study's own records, and its table for people."""

from __future__ import annotations

import datetime
import math
import re
from collections import Counter

import optuna

from eggsearch.ops.base import OpSpec, Problem
from eggsearch.records import Measurement, Status
from eggsearch.roofline import Roofline
from eggsearch.tuner import best_trial, finished


def redact(url: str) -> str:
    """Hide a password in a storage URL."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def precision_contract(problem: Problem) -> str:
    if problem.dtype != "fp32":
        return f"{problem.dtype} inputs, fp32 accumulation"
    if problem.allow_tf32:
        return "fp32 with TF32 allowed (kernels and PyTorch's reference alike)"
    return "exact fp32 (no TF32 in the kernels or in PyTorch's reference)"


def build_summary(op: OpSpec, problem: Problem, study: optuna.Study, device: dict,
                  hardware: str, backend: str, baseline: Measurement, roof: Roofline,
                  settings: dict, wall_time_s: float, plan_info: dict,
                  head_to_head: dict | None = None) -> dict:
    """The run's result. ``speedup`` is PyTorch's time over the best's: from the alternating
    head-to-head rounds after the study when they ran (``head_to_head``), else from the study
    (``study_speedup``: PyTorch timed at the start, the best trial whenever it ran). The best
    is the head-to-head's winner when it ran (``best.chosen_by``: "head-to-head"), else the
    study's fastest trial; its ``time_ms`` is always its trial's own measurement."""
    trials = finished(study)
    by_status = Counter(t.user_attrs.get("status", "unknown") for t in trials)
    best = best_trial(study)
    chosen_by = "study"
    if best is not None and head_to_head and head_to_head.get("speedup"):
        best, chosen_by = study.trials[head_to_head["trial"]], "head-to-head"
    gpu = backend == "gpu"
    summary = {
        "op": op.name, "shape": problem.shape_key, "dims": "x".join(problem.dims),
        "dtype": problem.dtype, "allow_tf32": problem.allow_tf32,
        "options": dict(problem.options), "precision": precision_contract(problem),
        "problem_key": problem.key,
        "tolerance": vars(op.tolerance(problem)),
        "device": device, "hardware_spec": hardware, "backend": backend,
        "timer": "cuda-events" if gpu else "interpreter-wallclock (CPU; not GPU performance)",
        "study": {"name": study.study_name, "storage": redact(settings["storage"]),
                  "sampler": settings["sampler"], "seed": settings["seed"]},
        "trials": {"total": len(trials), "by_status": dict(sorted(by_status.items()))},
        "plan": plan_info,
        "pytorch": baseline.to_dict(),
        "best": None, "speedup": None, "study_speedup": None, "head_to_head": head_to_head,
        "roofline": {"flops": roof.flops, "min_bytes": roof.min_bytes,
                     "bound_ms": roof.bound_s * 1e3 if roof.bound_s else None,
                     "limiter": roof.limiter},
        "wall_time_s": round(wall_time_s, 2),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {**settings, "storage": redact(settings["storage"])},
    }
    if best is not None:
        m = best.user_attrs["measurement"]
        summary["best"] = {"trial": best.number, "structure": best.user_attrs["structure"],
                           "config": best.user_attrs["config"], "chosen_by": chosen_by, **{
                               k: m[k] for k in ("time_ms", "p20_ms", "p80_ms", "rel_err",
                                                 "max_abs_err", "compile_s")}}
        if gpu and baseline.status == Status.OK and baseline.time_ms:
            summary["study_speedup"] = summary["speedup"] = baseline.time_ms / m["time_ms"]
        if gpu and head_to_head and head_to_head.get("speedup"):
            summary["speedup"] = head_to_head["speedup"]
        t = m["time_ms"] * 1e-3
        summary["roofline"].update(
            fraction=roof.fraction(t) if gpu else None,
            achieved_tflops=roof.flops / t / 1e12 if gpu else None,
            achieved_tbps=roof.min_bytes / t / 1e12 if gpu else None)
        copy_bw = device.get("copy_bandwidth")
        if gpu and copy_bw:
            summary["roofline"]["copy_bandwidth_fraction"] = roof.min_bytes / t / copy_bw
    return summary


def _fmt_ms(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isinf(v)):
        return "-"
    return f"{v * 1e3:.1f} us" if v < 1 else f"{v:.3f} ms"


def format_table(s: dict) -> str:
    """A short human-readable table of a summary."""
    opts = "".join(f" {k}={v}" for k, v in s.get("options", {}).items())
    rows = [("op", f"{s['op']} {s['dims']}={s['shape']} {s['dtype']}{opts}"),
            ("precision", s["precision"]),
            ("device", f"{s['device'].get('name')} ({s['backend']}; times: {s['timer']})")]
    best = s["best"]
    if best:
        cfg = " ".join(f"{k}={v}" for k, v in best["config"].items())
        rows += [("best structure", best["structure"]), ("best config", cfg),
                 ("best time", f"{_fmt_ms(best['time_ms'])} (p20 {_fmt_ms(best['p20_ms'])}, "
                               f"p80 {_fmt_ms(best['p80_ms'])}); rel. error "
                               f"{best['rel_err']:.2e}")]
    else:
        rows.append(("best", "no correct kernel found"))
    pt = s["pytorch"]
    rows.append(("PyTorch eager", f"{_fmt_ms(pt.get('time_ms'))}; rel. error "
                 f"{pt['rel_err']:.2e}" if pt.get("rel_err") is not None else
                 _fmt_ms(pt.get("time_ms"))))
    head = s.get("head_to_head") or {}
    if head.get("speedup"):
        study = (f"; {s['study_speedup']:.2f}x in the study" if s.get("study_speedup")
                 else "")
        rows.append(("speedup vs PyTorch", f"{head['speedup']:.2f}x head-to-head ("
                     f"{head['rounds']} alternating rounds: {_fmt_ms(head['best_ms'])} vs "
                     f"{_fmt_ms(head['pytorch_ms'])}){study}"))
    elif s["speedup"] is not None:
        rows.append(("speedup vs PyTorch", f"{s['speedup']:.2f}x"))
    if head.get("speedup") and len(head.get("candidates") or []) > 1:
        won, first = head["trial"], head.get("study_best_trial")
        also = "the study's fastest too" if won == first else f"the study's fastest: {first}"
        rows.append(("best chosen by", f"the rounds, among the study's {len(head['candidates'])} "
                     f"fastest configs: trial {won} ({also})"))
    if head.get("error"):
        rows.append(("head-to-head", f"failed: {head['error']}"))
    elif s["backend"] != "gpu":
        rows.append(("speedup vs PyTorch", "not claimed: interpreter times say nothing of a GPU"))
    r = s["roofline"]
    if r.get("fraction") is not None:
        extra = ""
        if r.get("copy_bandwidth_fraction") is not None:
            extra = f", {100 * r['copy_bandwidth_fraction']:.0f}% of measured copy bandwidth"
        rows.append(("roofline", f"{100 * r['fraction']:.1f}% of the {r['limiter']} bound "
                     f"{_fmt_ms(r['bound_ms'])} ({r['achieved_tflops']:.1f} TFLOP/s, "
                     f"{r['achieved_tbps']:.2f} TB/s{extra})"))
    status = ", ".join(f"{k} {v}" for k, v in s["trials"]["by_status"].items())
    rows.append(("trials", f"{s['trials']['total']} ({status})"))
    rows.append(("wall time", f"{s['wall_time_s']:.1f} s"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
