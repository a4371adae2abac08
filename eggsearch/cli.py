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
    run.add_argument("--op", required=True, help="operator name (see list-ops)")
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
    run.add_argument("--search-spaces", type=Path, help="directory of <op>.yaml spaces")
    run.add_argument("--rules", type=Path, help="directory of expert rules")
    run.add_argument("--json", action="store_true", help="print summary.json on stdout")
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser("list-ops", help="list the operators and their structures")
    lst.set_defaults(func=cmd_list_ops)
    return parser


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
    summary = runner.run(args)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        from eggsearch.summary import format_table

        print(format_table(summary))
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
