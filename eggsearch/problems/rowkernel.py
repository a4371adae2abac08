"""Row groups: reductions over the middle of an ``O x C x I`` domain, fused with what surrounds
them.

Row ``r`` of the ``R = O * I`` rows is ``(o, i)`` with ``r = o * I + i``; its element ``c`` sits
at ``flat = o * C * I + c * I + i``. A program takes ``BLOCK_R`` rows (for ``I > 1``: one ``o``
and ``BLOCK_R`` consecutive ``i``, which are consecutive in memory). In one pass
(``BLOCK_C >= C``) every member is computed once, in graph order, on a ``[BLOCK_R, BLOCK_C]``
tile. Looped, reductions are computed level by level (a reduction that needs another's result
is one level up), one sweep over the row in ``BLOCK_C`` columns per level, recomputing the
full-size values each sweep needs; a last sweep stores full-size outputs. A variance is one
sweep: each accumulator slot keeps Welford's running mean and sum of squared deviations, and the
slots are merged at the end with Chan's formula (``_welford_combine``), never the
cancellation-prone sum of squares. In one pass it is the mean, then the squared deviations of
the row in registers. Reductions
of everything store one partial per row; the finisher (one program) combines them.
"""

from __future__ import annotations

from torch.fx import Node

from eggsearch.problems.codegen import Body, Index, KernelArgs
from eggsearch.problems.exprs import Var
from eggsearch.problems.fusion import Group, Red, tensor_args
from eggsearch.problems.graph import val
from eggsearch.problems.kernels import GroupCode, header, indent, launcher, ops_of, out_sizes, prod
from eggsearch.problems.launch import run_call
from eggsearch.problems.spaces import row_space

INF = 'float("inf")'


class RowWriter:
    def __init__(self, g: Group):
        self.g = g
        shape = val(g.domain).shape
        a, b = g.domain_dims
        self.O, self.C, self.I = prod(shape[:a]), prod(shape[a:b]), prod(shape[b:])
        self.inner_one = bool(self.I == 1)
        self.args = KernelArgs()
        outs = g.outputs()
        self.full_outs = [o for o in outs if g.kinds[o] == "full"]
        self.row_outs = [o for o in outs if g.kinds[o] == "row"]
        self.total_outs = [o for o in outs if g.kinds[o] == "total"]
        self.args.outputs = [(f"out{k}_ptr", o)
                             for k, o in enumerate(self.full_outs + self.row_outs)]
        self.totals = [k for k, r in g.reds.items() if r.to == "total"]
        self.parts = {k: f"part{j}_ptr" for j, k in enumerate(self.totals)}
        self.levels = self._levels()

    # -- indexing ----------------------------------------------------------------------------
    def full_index(self) -> Index:
        if self.inner_one:
            return Index("flat", "mask", last="cols[None, :]", last_size=self.C,
                         last_mask="cmask[None, :]", row="rows[:, None]", row_inner=self.C,
                         row_mask="rmask[:, None]")
        return Index("flat", "mask")

    ROW = Index("rows", "rmask")

    def tile_lines(self, start: str) -> list[str]:
        cols = "cols[None, :]" if self.inner_one else "cols[None, :].to(IDX) * I"
        return [f"cols = {start}tl.arange(0, BLOCK_C)", "cmask = cols < C",
                "mask = rmask[:, None] & cmask[None, :]", f"flat = base[:, None] + {cols}"]

    def prologue(self) -> list[str]:
        if self.inner_one:
            return ["rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)",
                    "rmask = rows < R", "rows = rows.to(IDX)", "base = rows * C"]
        # Rows (o, i) with consecutive i are consecutive in memory: program (o, i-block), so
        # that the compiler sees the contiguity (no // or % on the row index) and coalesces.
        return ["i = tl.program_id(1) * BLOCK_R + tl.arange(0, BLOCK_R)", "rmask = i < I",
                "o = tl.program_id(0).to(IDX)", "rows = o * I + i.to(IDX)",
                "base = o * (C * I) + i.to(IDX)"]

    # -- dependencies --------------------------------------------------------------------------
    def red_keys(self, node: Node) -> list:
        return [node] if node in self.g.reds else []

    def deps(self, node: Node, memo=None) -> set:
        memo = {} if memo is None else memo
        if node in memo:
            return memo[node]
        out = set(self.red_keys(node))
        if not out:
            for a in tensor_args(node):
                if a in self.g.kinds:
                    out |= self.deps(a, memo)
        memo[node] = out
        return out

    def _levels(self) -> dict:
        levels: dict = {}

        def level(key) -> int:
            if key not in levels:
                red = self.g.reds[key]
                needs = self.deps(red.src) | (self.deps(red.index) if red.index is not None
                                              else set())
                levels[key] = 1 + max((level(k) for k in needs), default=0)
            return levels[key]

        for key in self.g.reds:
            level(key)
        return levels

    def closure(self, roots: list[Node]) -> list[Node]:
        """Full-size members the roots need, in graph order (row values are at hand)."""
        need: set[Node] = set()
        stack = [r for r in roots if self.g.kinds.get(r) == "full"]
        while stack:
            n = stack.pop()
            if n in need:
                continue
            need.add(n)
            stack += [a for a in tensor_args(n) if self.g.kinds.get(a) == "full"]
        return [m for m in self.g.members if m in need]

    # -- reductions ----------------------------------------------------------------------------
    def _src(self, body: Body, key, index: Index) -> Var:
        red = self.g.reds[key]
        ctx = "row" if self.g.kinds.get(red.src) == "row" else "full"
        use = tuple(val(red.src).shape)
        return body.operand(red.src, red.src, ctx, index if ctx == "full" else self.ROW, use)

    def _pick_index(self, body: Body, red: Red, node: Node) -> str:
        return str(body.operand(red.index, node, "row", self.ROW, tuple(val(red.index).shape)))

    def one_pass_reduce(self, body: Body, key, index: Index) -> None:
        red, node = self.g.reds[key], key
        s = self._src(body, key, index)
        v = body.fresh("r")
        if red.to == "total":
            if self.g.kinds.get(red.src) == "row":
                body.emit(f"{v} = {_as_f(s)}")
            else:
                body.emit(f"{v} = {_reduce_tile(red.op, _as_f(s))}")
            body.vars[("part", key)] = Var(v)
            return
        op = red.op
        if op in ("sum", "mean", "max", "min"):
            code = _reduce_tile(op, _as_f(s))
            body.emit(f"{v} = {code}" + (" / C" if op == "mean" else ""))
        elif op in ("argmax", "argmin"):
            m = body.fresh("m")
            body.emit(f"{m} = {_reduce_tile(op[3:], str(s))}")
            body.emit(f"{v} = tl.min(tl.where(mask & ({s} == {m}[:, None]), cols[None, :], C), "
                      "axis=1).to(tl.int64)")
        elif op == "pick":
            idx = self._pick_index(body, red, node)
            body.emit(f"{v} = tl.sum(tl.where(mask & (cols[None, :] == {idx}[:, None]), "
                      f"{_as_f(s)}, 0.0), axis=1)")
        elif op == "var":
            m, d = body.fresh("mean"), body.fresh("d")
            body.emit(f"{m} = tl.sum(tl.where(mask, {_as_f(s)}, 0.0), axis=1) / C")
            body.emit(f"{d} = tl.where(mask, {_as_f(s)} - {m}[:, None], 0.0)")
            body.emit(f"{v} = tl.sum({d} * {d}, axis=1) / (C - {red.correction!r})")
        body.vars[node] = Var(v, "i" if op in ("argmax", "argmin") else "f")

    # -- kernels -------------------------------------------------------------------------------
    def one_pass(self) -> list[str]:
        body = Body(self.g, self.args)
        index = self.full_index()
        body.lines += self.tile_lines("")
        for m in self.g.members:
            kind = self.g.kinds[m]
            keys = self.red_keys(m)
            if keys and kind in ("row", "total", "tuple"):
                for k in keys:
                    if k not in body.vars and ("part", k) not in body.vars:
                        self.one_pass_reduce(body, k, index)
            elif kind == "full":
                body.member(m, "full", index)
            elif kind == "row":
                body.member(m, "row", self.ROW)
        self._stores(body, index)
        return body.lines

    def looped(self) -> list[str]:
        body = Body(self.g, self.args)
        done: set = set()
        self._row_members(body, done)
        for lvl in range(1, max(self.levels.values(), default=0) + 1):
            keys = [k for k, v in self.levels.items() if v == lvl]
            self._sweep(body, keys)
            done |= set(keys)
            self._row_members(body, done)
        if self.full_outs:
            loop = body.scope()
            loop.lines += self.tile_lines("c0 + ")
            for m in self.closure(self.full_outs):
                loop.member(m, "full", self.full_index())
            for ptr, o in self.args.outputs:
                if o in self.full_outs:
                    loop.store(o, ptr, self.full_index())
            body.emit("for c0 in range(0, C, BLOCK_C):")
            body.lines += indent(loop.lines)
        self._stores(body, None)
        return body.lines

    def _row_members(self, body: Body, done: set) -> None:
        for m in self.g.members:
            if self.g.kinds[m] != "row" or m in body.vars or self.red_keys(m):
                continue
            if self.deps(m) <= done:
                body.member(m, "row", self.ROW)

    def _sweep(self, body: Body, keys: list) -> None:
        index = self.full_index()
        swept = []
        for k in keys:
            red = self.g.reds[k]
            if red.to == "total" and self.g.kinds.get(red.src) == "row":
                body.vars[("part", k)] = Var(_as_f(self._src(body, k, index)))
            else:
                swept.append(k)
        if not swept:
            return
        loop = body.scope()
        loop.lines += self.tile_lines("c0 + ")
        for m in self.closure([self.g.reds[k].src for k in swept]):
            loop.member(m, "full", index)
        finals = []
        for k in swept:
            red = self.g.reds[k]
            acc = body.fresh("acc")
            s = self._src(loop, k, index)
            op = "sum" if red.op in ("mean", "pick", "var") else red.op
            body.lines += _acc_init(op, acc)
            if red.op == "var":  # Welford per slot: count, mean (acc), squared deviations
                body.lines += [f"{acc}_m2 = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)",
                               f"{acc}_n = tl.zeros((BLOCK_R, BLOCK_C), dtype=tl.float32)"]
                loop.emit(f"{acc}_n += mask.to(tl.float32)")
                loop.emit(f"{acc}_d = tl.where(mask, {_as_f(s)} - {acc}, 0.0)")
                loop.emit(f"{acc} += {acc}_d / tl.maximum({acc}_n, 1.0)")
                loop.emit(f"{acc}_m2 += {acc}_d * tl.where(mask, {_as_f(s)} - {acc}, 0.0)")
            elif red.op == "pick":
                idx = self._pick_index(body, red, k)
                loop.emit(f"{acc} += tl.where(mask & (cols[None, :] == {idx}[:, None]), "
                          f"{_as_f(s)}, 0.0)")
            else:
                loop.lines += _acc_update(op, acc, s)
            finals.append((k, acc, op))
        body.emit("for c0 in range(0, C, BLOCK_C):")
        body.lines += indent(loop.lines)
        for k, acc, op in finals:
            red = self.g.reds[k]
            v = body.fresh("r")
            if red.to == "total":
                body.emit(f"{v} = {_acc_final(op, acc)}")
                body.vars[("part", k)] = Var(v)
            elif red.op == "var":
                body.emit(f"_, {v}_m2, _ = tl.reduce(({acc}, {acc}_m2, {acc}_n), 1, "
                          "_welford_combine)")
                body.emit(f"{v} = {v}_m2 / (C - {red.correction!r})")
                body.vars[k] = Var(v)
            else:
                body.emit(f"{v} = {_acc_final(op, acc)}" + (" / C" if red.op == "mean" else ""))
                body.vars[k] = Var(v, "i" if op in ("argmax", "argmin") else "f")

    def _stores(self, body: Body, index: Index | None) -> None:
        for k in self.totals:
            body.emit(f"tl.store({self.parts[k]} + rows, {body.vars[('part', k)]}, mask=rmask)")
        for ptr, o in self.args.outputs:
            if o in self.row_outs:
                body.store(o, ptr, self.ROW)
            elif o in self.full_outs and index is not None:
                body.store(o, ptr, index)


WELFORD_SOURCE = '''
# ---- variance in one sweep ----
@triton.jit
def _welford_combine(mean_a, m2_a, n_a, mean_b, m2_b, n_b):
    """Chan's merge of two (mean, sum of squared deviations, count) summaries."""
    n = n_a + n_b
    w = tl.where(n > 0, n_b / tl.maximum(n, 1.0), 0.0)
    d = mean_b - mean_a
    return mean_a + d * w, m2_a + m2_b + d * d * n_a * w, n
'''.strip()


def _as_f(v) -> str:
    return str(v) if not isinstance(v, Var) or v.kind == "f" else f"{v.name}.to(tl.float32)"


def _reduce_tile(op: str, s: str) -> str:
    if op in ("sum", "mean"):
        return f"tl.sum(tl.where(mask, {s}, 0.0), axis=1)"
    if op == "max":
        return f"tl.max(tl.where(mask, {s}, -{INF}), axis=1)"
    return f"tl.min(tl.where(mask, {s}, {INF}), axis=1)"


def _acc_init(op: str, acc: str) -> list[str]:
    shape = "(BLOCK_R, BLOCK_C)"
    if op == "sum":
        return [f"{acc} = tl.zeros({shape}, dtype=tl.float32)"]
    if op in ("max", "argmax"):
        fill = f"-{INF}"
    else:
        fill = INF
    lines = [f"{acc} = tl.full({shape}, {fill}, tl.float32)"]
    if op in ("argmax", "argmin"):
        lines.append(f"{acc}_i = tl.zeros({shape}, dtype=tl.int32)")
    return lines


def _acc_update(op: str, acc: str, s) -> list[str]:
    s = _as_f(s)
    if op == "sum":
        return [f"{acc} += tl.where(mask, {s}, 0.0)"]
    if op == "max":
        return [f"{acc} = tl.maximum({acc}, tl.where(mask, {s}, -{INF}))"]
    if op == "min":
        return [f"{acc} = tl.minimum({acc}, tl.where(mask, {s}, {INF}))"]
    cmp = ">" if op == "argmax" else "<"
    return [f"{acc}_u = mask & ({s} {cmp} {acc})", f"{acc} = tl.where({acc}_u, {s}, {acc})",
            f"{acc}_i = tl.where({acc}_u, cols[None, :] + {acc}_i * 0, {acc}_i)"]


def _acc_final(op: str, acc: str) -> str:
    if op == "sum":
        return f"tl.sum({acc}, axis=1)"
    if op in ("max", "min"):
        return f"tl.{op}({acc}, axis=1)"
    red = "max" if op == "argmax" else "min"
    return (f"tl.min(tl.where({acc} == tl.{red}({acc}, axis=1)[:, None], {acc}_i, 2147483647),"
            " axis=1).to(tl.int64)")


def finisher(w: RowWriter) -> tuple[list[str], KernelArgs]:
    """The one-program kernel that combines per-row partials into the totals and finishes the
    pointwise ops on them."""
    g = w.g
    args = KernelArgs(tensors=w.args.tensors, sizes=w.args.sizes)
    args.outputs = [(f"tot{k}_ptr", o) for k, o in enumerate(w.total_outs)]
    body = Body(g, args)
    body.emit("offs = tl.arange(0, BLOCK)")
    for j, k in enumerate(w.totals):
        red = g.reds[k]
        op = "sum" if red.op in ("sum", "mean") else red.op
        body.emit(f"acc{j} = tl.full((BLOCK,), {_neutral(op)}, tl.float32)")
    body.emit("for start in range(0, R, BLOCK):")
    body.emit("    m = start + offs < R")
    for j, k in enumerate(w.totals):
        red = g.reds[k]
        op = "sum" if red.op in ("sum", "mean") else red.op
        body.emit(f"    p = tl.load(part{j}_ptr + start + offs, mask=m, other={_neutral(op)})")
        body.emit(f"    acc{j} = " + {"sum": f"acc{j} + p", "max": f"tl.maximum(acc{j}, p)",
                                        "min": f"tl.minimum(acc{j}, p)"}[op])
    for j, k in enumerate(w.totals):
        red = g.reds[k]
        op = "sum" if red.op in ("sum", "mean") else red.op
        fn = {"sum": "tl.sum", "max": "tl.max", "min": "tl.min"}[op]
        div = ""
        if red.op == "mean":
            div = " / R" if g.kinds.get(red.src) == "row" else " / NUMEL"
        body.emit(f"t{j} = {fn}(acc{j}, axis=0){div}")
        body.vars[k] = Var(f"t{j}")
    scalar = Index("0", "True")
    for m in g.members:
        if g.kinds[m] == "total" and m not in body.vars:
            body.member(m, "total", scalar)
    for ptr, o in args.outputs:
        body.store(o, ptr, None)
    return body.lines, args


def _neutral(op: str) -> str:
    return {"sum": "0.0", "max": f"-{INF}", "min": INF}[op]


def row_code(g: Group) -> GroupCode:
    w = RowWriter(g)
    one, loop = w.one_pass(), w.looped()
    fin_lines, fin_args = finisher(w) if w.totals else ([], None)
    prologue = w.prologue()
    named = ["R", "C", "I", "NUMEL"]
    parts = [w.parts[k] for k in w.totals]
    gid = g.gid
    src = []
    for suffix, lines in (("one", one), ("loop", loop)):
        src += [header(f"_g{gid}_{suffix}", w.args, named, ["BLOCK_R", "BLOCK_C", "IDX"],
                       extra_ptrs=parts),
                f'    """Row group {gid} ({suffix}): {ops_of(g)}."""',
                *indent(prologue), *indent(lines), "", ""]
    if fin_args is not None:
        src += [header(f"_g{gid}_finish", fin_args, named, ["BLOCK"], extra_ptrs=parts),
                f'    """Row group {gid}: combines the per-row partials into totals."""',
                *indent(fin_lines), "", ""]
    n_main = len(w.args.outputs)
    outputs = w.full_outs + w.row_outs + w.total_outs
    tensors = [f"t{i}" for i in range(len(w.args.tensors))]
    sizes = [n for n, _ in w.args.sizes]
    main_call = tensors + [f"o{k}" for k in range(n_main)] + [
        f"part{j}" for j in range(len(parts))] + named + sizes
    p = f"g{gid}_"
    body = [f"    part{j} = torch.empty(max(R, 1), device=t0.device, dtype=torch.float32)"
            for j in range(len(parts))]
    body += [f"    BR, BC = cfg['{p}BLOCK_R'], cfg['{p}BLOCK_C']",
             "    grid = " + ("(triton.cdiv(R, BR),)" if w.inner_one
                                 else "(R // I, triton.cdiv(I, BR))"),
             f"    kernel = _g{gid}_one if BC >= C else _g{gid}_loop",
             "    IDX = _idx(NUMEL)",
             "    " + run_call("kernel", "grid", main_call,
                                  [("BLOCK_R", "BR"), ("BLOCK_C", "BC"), ("IDX", "IDX")],
                                  [("num_warps", f"cfg['{p}num_warps']")])]
    if fin_args is not None:
        fin_call = tensors + [f"o{n_main + k}" for k in range(len(w.total_outs))] + [
            f"part{j}" for j in range(len(parts))] + named + sizes
        body.append("    " + run_call(f"_g{gid}_finish", "(1,)", fin_call, [("BLOCK", "1024")],
                                      [("num_warps", "4")]))
    run = launcher(gid, [b for _, b in w.args.tensors], outputs, named + sizes, body)
    R, C = int(g.O * g.I), int(g.C)
    tunables, seeds, constraints = row_space(R, C, int(g.I), reduce_only=not w.full_outs)
    sizes_out = [("R", w.O * w.I), ("C", w.C), ("I", w.I), ("NUMEL", w.O * w.C * w.I)]
    welford = any(r.op == "var" for r in g.reds.values())
    return GroupCode(gid, "row", "\n".join(src) + "\n" + run, [b for _, b in w.args.tensors],
                     sizes_out + w.args.sizes + out_sizes(outputs), outputs, tunables, seeds,
                     constraints, helpers=[WELFORD_SOURCE] if welford else [])
