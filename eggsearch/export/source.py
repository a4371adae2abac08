"""Self-contained kernel source: what a launcher needs, copied out of eggsearch with ``ast``.

Starting from a structure's launcher, the closure of the top-level names it uses is collected:
functions (``@triton.jit`` kernels and helpers, host helpers), module constants and the imports
of torch, triton and the standard library. A name imported from ``eggsearch.*`` (``next_pow2``,
a helper of another op) is inlined by copying its definition from that module, recursively.
Nothing else of eggsearch comes along (no ``OpSpec`` class, no ``OP``), so the result imports
only torch and triton. Each definition is copied as written, with its decorators and the
comment lines just above it.

The op's PyTorch reference (``OpSpec.reference``) is copied the same way as a plain function,
to be the exported module's fallback; one that uses ``self`` cannot be exported.
"""

from __future__ import annotations

import ast
import copy
import graphlib
import hashlib
import importlib.util
import inspect
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ALLOWED_ROOTS = frozenset({"torch", "triton"}) | frozenset(sys.stdlib_module_names)
REFERENCE_NAME = "_reference"


class SourceError(Exception):
    """The kernel source cannot be made self-contained (the message says what to change)."""


@dataclass(frozen=True)
class Definition:
    module: str
    name: str
    text: str
    lineno: int


@dataclass(frozen=True)
class KernelSource:
    """Imports and definitions, in an order that runs; ``sha256`` per structure's launcher."""

    imports: tuple[str, ...]
    definitions: tuple[Definition, ...]
    sha256: tuple[tuple[str, str], ...]

    @property
    def names(self) -> set[str]:
        return {d.name for d in self.definitions}

    def text(self) -> str:
        return "\n\n".join(d.text for d in self.definitions)


class _Names(ast.NodeVisitor):
    """Names a definition uses (loads), split into code names and annotation-only names."""

    def __init__(self) -> None:
        self.code: set[str] = set()
        self.annotations: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        self.code.add(node.id)

    def _annotation(self, node: ast.AST | None) -> None:
        if node is not None:
            self.annotations |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}

    def visit_arg(self, node: ast.arg) -> None:
        self._annotation(node.annotation)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        self.visit(node.args)
        self._annotation(node.returns)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._annotation(node.annotation)
        if node.value is not None:
            self.visit(node.value)


def _used_names(node: ast.AST) -> tuple[set[str], set[str]]:
    names = _Names()
    names.visit(node)
    return names.code, names.annotations - names.code


class _Module:
    """One parsed module: its top-level definitions and imports, by name."""

    def __init__(self, name: str):
        """``name``: a dotted module name, or the path of a ``.py`` file (a saved structure)."""
        path = name if name.endswith(".py") else getattr(importlib.util.find_spec(name),
                                                         "origin", None)
        if not path or not str(path).endswith(".py") or not Path(path).is_file():
            raise SourceError(f"cannot find the source of module {name}")
        self.name = name
        self.source = Path(path).read_text()
        self.lines = self.source.splitlines()
        self.defs: dict[str, ast.stmt] = {}
        self.imports: dict[str, tuple[str, str | None, str]] = {}  # name -> (module, attr, stmt)
        for node in ast.parse(self.source).body:
            self._index(node)

    def _index(self, node: ast.stmt) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        self.defs[n.id] = node
        elif isinstance(node, ast.Import):
            for a in node.names:
                bound = a.asname or a.name.split(".")[0]
                target = a.name if a.asname else a.name.split(".")[0]
                self.imports[bound] = (target, None, ast.unparse(ast.Import(names=[a])))
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level and self.name.endswith(".py"):
                raise SourceError(f"{self.name}: relative import of {node.module}")
            package = self.name.rpartition(".")[0]
            module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            for a in node.names:
                stmt = ast.unparse(ast.ImportFrom(module=module, names=[a], level=0))
                self.imports[a.asname or a.name] = (module, a.name, stmt)

    def text_of(self, node: ast.stmt) -> str:
        """The definition as written: decorators, body, and the comment lines just above."""
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        while start > 1 and self.lines[start - 2].lstrip().startswith("#"):
            start -= 1
        return "\n".join(self.lines[start - 1:node.end_lineno])


class _Collector:
    """Walks the closure of names from some roots; remembers where each definition came from."""

    def __init__(self) -> None:
        self.modules: dict[str, _Module] = {}
        self.defs: dict[str, Definition] = {}
        self.imports: dict[str, str] = {}  # bound name -> import statement
        self.module_deps: dict[str, set[str]] = {}

    def module(self, name: str) -> _Module:
        if name not in self.modules:
            self.modules[name] = _Module(name)
            self.module_deps.setdefault(name, set())
        return self.modules[name]

    def add(self, module: str, name: str, node: ast.stmt | None = None,
            text: str | None = None) -> None:
        """Add ``name`` of ``module`` (or the given ``node``/``text``) and all it uses."""
        mod = self.module(module)
        node = node if node is not None else mod.defs[name]
        text = text if text is not None else mod.text_of(node)
        known = self.defs.get(name)
        if known is not None:
            if known.text != text:
                raise SourceError(f"two definitions of '{name}' ({known.module}, {module}); "
                                  "rename one to export them together")
            return
        self.defs[name] = Definition(module, name, text, node.lineno)
        code, annotations = _used_names(node)
        for used in sorted(code):
            self._resolve(mod, used, required=True)
        for used in sorted(annotations):  # never evaluated (postponed annotations)
            self._resolve(mod, used, required=False)

    def _resolve(self, mod: _Module, name: str, required: bool) -> None:
        if name in mod.defs:
            if required:
                self.add(mod.name, name)
            return
        if name not in mod.imports:
            return  # a local, an argument or a builtin
        target, attr, stmt = mod.imports[name]
        root = target.split(".")[0]
        if root == "eggsearch":
            if not required:
                return
            if attr is None or attr != name:
                raise SourceError(f"{mod.name} uses eggsearch through '{name}' ({stmt}); only "
                                  "'from eggsearch.<module> import <name>' can be inlined")
            source_mod = self.module(target)
            if name not in source_mod.defs:
                raise SourceError(f"{target} does not define '{name}' at its top level")
            self.module_deps[mod.name].add(target)
            self.add(target, name)
        elif root in ALLOWED_ROOTS:
            known = self.imports.setdefault(name, stmt)
            if known != stmt:
                raise SourceError(f"'{name}' is imported two ways: {known!r} and {stmt!r}")
        elif required:
            raise SourceError(f"{mod.name} needs '{root}' for '{name}'; an exported module may "
                              "import only torch, triton and the standard library")

    def ordered(self) -> tuple[Definition, ...]:
        """Definitions of modules that others import from come first; then by line."""
        rank = {m: i for i, m in enumerate(graphlib.TopologicalSorter(
            self.module_deps).static_order())}
        return tuple(sorted(self.defs.values(), key=lambda d: (rank[d.module], d.lineno)))


def _sha256(defs: tuple[Definition, ...], imports: dict[str, str]) -> str:
    h = hashlib.sha256()
    for stmt in sorted(set(imports.values())):
        h.update(stmt.encode() + b"\n")
    for d in defs:
        h.update(d.text.encode() + b"\n\n")
    return h.hexdigest()


def structure_sha256(module: str, launcher: str) -> str:
    """The hash of one structure's self-contained source (its launcher and all it uses)."""
    alone = _Collector()
    if launcher not in alone.module(module).defs:
        raise SourceError(f"{module} defines no top-level '{launcher}'")
    alone.add(module, launcher)
    return _sha256(alone.ordered(), alone.imports)


def kernel_source(launchers: dict[str, tuple[str, str]], op: object) -> KernelSource:
    """The source of ``{structure: (module, launcher name)}``, of ``op``'s reference as a
    function ``_reference(*inputs)``, and of everything they use.

    Raises:
        SourceError: a definition needs a package other than torch/triton/stdlib, two modules
            define one name differently, eggsearch is used in a way that cannot be inlined, or
            the reference uses ``self``.
    """
    everything = _Collector()
    digests = []
    for structure, (module, launcher) in sorted(launchers.items()):
        digests.append((structure, structure_sha256(module, launcher)))
        everything.add(module, launcher)
    module, node = _reference_node(op)
    everything.add(module, REFERENCE_NAME, node=node, text=ast.unparse(node))
    return KernelSource(tuple(sorted(set(everything.imports.values()))), everything.ordered(),
                        tuple(digests))


def _reference_node(op: object) -> tuple[str, ast.FunctionDef]:
    """``op.reference`` rewritten as a top-level function of the inputs alone."""
    func = type(op).reference
    node = copy.deepcopy(ast.parse(textwrap.dedent(inspect.getsource(func))).body[0])
    if not isinstance(node, ast.FunctionDef) or not node.args.args:
        raise SourceError(f"{type(op).__name__}.reference is not a plain method")
    node.args.args = node.args.args[1:]
    if "self" in _used_names(node)[0]:
        raise SourceError(f"{type(op).__name__}.reference uses self; the exported fallback "
                          "must be a function of the inputs alone")
    node.name, node.decorator_list, node.returns = REFERENCE_NAME, [], None
    for a in node.args.args:
        a.annotation = None
    node.lineno = 10**9  # after everything it may use
    return func.__module__, node
