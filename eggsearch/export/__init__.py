"""``eggsearch export``: the tuned kernels of an op as a module production code can import.

From the studies of an op's run directories it writes, into ``--out``:

    <op>_kernels.py     self-contained (torch and triton only): the kernels and launchers of the
                        structures that won, the op's PyTorch reference (the fallback), and a
                        dispatcher from (dtype, shape) to config; see ``runtime.py``.
    <op>_configs.json   the dispatch table: per (GPU model, Triton version, dtype, shape) the best
                        config and the top-k, with provenance (Triton and torch versions, GPU name
                        and compute capability, each kernel's source hash, shape key, measured
                        and PyTorch times, speedup, trials, date, study and run directory).

Pieces: ``runs.py`` finds run directories, ``table.py`` builds the entries from their studies,
``source.py`` copies the kernel source out of eggsearch, ``writer.py`` writes the directory.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from eggsearch.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    out: Path
    module: Path
    configs: Path
    entries: tuple[dict, ...]
    structures: tuple[str, ...]


def export(op_name: str, runs: list[Path], out: Path, storage: str | None = None,
           top_k: int = 5, strict: bool = False) -> ExportResult:
    """Export the best configs of ``op_name`` found under ``runs`` into the directory ``out``.

    Raises:
        UsageError: unknown op, no run directory or no correct kernel for it, a storage that
            does not exist, ``out`` that is something other than an earlier export, or kernel
            source that cannot be made self-contained. Nothing is written then.
    """
    from eggsearch import __version__
    from eggsearch.export.runs import find_runs
    from eggsearch.export.source import SourceError, kernel_source
    from eggsearch.export.table import best_per_key, entry_of, io_layout
    from eggsearch.export.writer import FORMAT, check_out, file_names, module_text, now, write_dir
    from eggsearch.ops import get_op

    op = get_op(op_name)
    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    out = Path(out)
    check_out(out)
    records = find_runs(runs, storage, op=op.name)
    found = [e for e in (entry_of(r, op, top_k) for r in records) if e is not None]
    if not found:
        raise UsageError(f"no correct {op.name} kernel in the {len(records)} study(ies) found")
    entries = best_per_key(found)
    launchers: dict[str, tuple[str, str]] = {}
    for c in (c for e in entries for c in e.top):
        if launchers.setdefault(c.structure, (c.module, c.launcher)) != (c.module, c.launcher):
            raise UsageError(f"cannot export {op.name}: two different structures are named "
                             f"'{c.structure}' ({launchers[c.structure][0]}, {c.module})")
    structures = sorted(launchers)
    try:
        source = kernel_source(launchers, op)
    except SourceError as exc:
        raise UsageError(f"cannot export {op.name}: {exc}") from None
    sha = dict(source.sha256)
    inputs, outputs = io_layout(op)
    table = {"format": FORMAT, "op": op.name, "exported": now(), "eggsearch": __version__,
             "dims": list(op.dims), "inputs": inputs, "outputs": outputs,
             "option_defaults": dict(op.options), "top_k": top_k,
             "kernels": {s: {"launcher": launchers[s][1], "module": launchers[s][0],
                             "sha256": sha[s]} for s in structures},
             "entries": [e.to_json(sha) for e in entries]}
    try:
        text = module_text(op.name, source, table, strict)
    except SourceError as exc:
        raise UsageError(f"cannot export {op.name}: {exc}") from None
    module_name, configs_name = file_names(op.name)
    write_dir(out, {module_name: text,
                    configs_name: json.dumps(table, indent=2, sort_keys=True) + "\n"})
    log.info("exported %d problem(s) of %s to %s", len(entries), op.name, out)
    return ExportResult(out, out / module_name, out / configs_name, tuple(table["entries"]),
                        tuple(structures))


def format_result(result: ExportResult) -> str:
    """A short table of what was exported, for people."""
    rows = [("problem", "gpu", "structure", "time", "pytorch", "speedup", "trials")]
    for e in result.entries:
        speedup = f"{e['speedup']:.2f}x" if e["speedup"] else "-"
        pytorch = f"{e['pytorch_ms']:.4g} ms" if e["pytorch_ms"] else "-"
        rows.append((e["problem_key"], e["gpu"], e["structure"], f"{e['time_ms']:.4g} ms",
                     pytorch, speedup, str(e["trials"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines + [f"module: {result.module}", f"configs: {result.configs}"])
