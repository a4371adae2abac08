"""Writing an export: the module's text, and the directory, replaced atomically.

The files are written into a temporary directory beside ``--out``, flushed to disk, and only
then swapped in (an atomic exchange of the two directories where Linux offers
``renameat2(RENAME_EXCHANGE)``, else two renames), so an export that is killed or fails
midway leaves the previous export as it was.
"""

from __future__ import annotations

import ast
import ctypes
import datetime
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from eggsearch.errors import UsageError
from eggsearch.export.source import REFERENCE_NAME, KernelSource, SourceError

FORMAT = "eggsearch-export/1"
# Copied into every exported module (it imports only torch, triton and the standard library).
RUNTIME = Path(__file__).with_name("runtime.py")
_RULE = "# " + "-" * 96


def file_names(op: str) -> tuple[str, str]:
    return f"{op}_kernels.py", f"{op}_configs.json"


def _runtime_parts() -> tuple[list[str], str]:
    """The runtime's import statements, and its docstring (as comments) and code."""
    text = RUNTIME.read_text()
    tree = ast.parse(text)
    body = tree.body
    imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))
               and getattr(n, "module", None) != "__future__"]
    statements = [ast.unparse(ast.Import(names=[a])) if isinstance(n, ast.Import) else
                  ast.unparse(ast.ImportFrom(module=n.module, names=[a], level=0))
                  for n in imports for a in n.names]
    lines = text.splitlines()
    doc = "\n".join(f"# {ln}".rstrip() for ln in ast.get_docstring(tree).splitlines())
    return statements, doc + "\n\n" + "\n".join(lines[imports[-1].end_lineno:]).strip("\n")


def _runtime_names() -> set[str]:
    names = set()
    for node in ast.parse(RUNTIME.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def import_block(statements: set[str]) -> list[str]:
    """Import statements as isort lays them out: stdlib, then the rest; ``from`` imports merged."""
    groups: list[list[str]] = []
    for third_party in (False, True):
        plain, froms = [], {}
        for stmt in statements:
            words = stmt.split()
            if (words[1].split(".")[0] not in sys.stdlib_module_names) != third_party:
                continue
            if words[0] == "import":
                plain.append(stmt)
            else:
                froms.setdefault(words[1], []).append(" ".join(words[3:]))
        lines = sorted(plain) + [f"from {m} import {', '.join(sorted(n))}"
                                 for m, n in sorted(froms.items())]
        if lines:
            groups.append(lines)
    return [line for g in groups for line in [*g, ""]][:-1]


def _header(op: str, table: dict) -> list[str]:
    module_file, configs = file_names(op)
    module = module_file.removesuffix(".py")
    gpus = sorted({f"{e['gpu']} (Triton {e['triton']})" for e in table["entries"]})
    usage = [(f"y = {module}.{op}(*inputs)", "allocates the output"),
             (f"{module}.{op}(*inputs, out=y)", "or writes into yours"),
             (f"{module}.choose(*inputs)", "what runs and why: exact, bucket, autotune, fallback")]
    width = max(len(code) for code, _ in usage)
    return [
        f'"""{op} kernels tuned by eggsearch; generated (re-export, do not edit).', "",
        f"Exported {table['exported']}: {len(table['entries'])} tuned problem(s) on "
        f"{'; '.join(gpus)}.",
        f"Needs only torch and triton. Configs and provenance: {configs}, beside this file.",
        "", f"    import {module}", *(f"    {code.ljust(width)}  # {why}" for code, why in usage),
        "",
        "At import the configs are checked against this GPU model and Triton version: where "
        "they", "were tuned elsewhere it warns, and those calls run the PyTorch reference "
        "(STRICT: refuses).", '"""']


def _join(definitions) -> str:
    """Definitions as a file lays them out: two blank lines around functions and classes."""
    def is_block(text: str) -> bool:
        code = next((ln for ln in text.splitlines() if not ln.startswith("#")), "")
        return code.startswith(("@", "def ", "class ", "async def "))

    parts = [definitions[0].text]
    for before, d in zip(definitions, definitions[1:]):
        parts.append(("\n\n\n" if is_block(before.text) or is_block(d.text) else "\n") + d.text)
    return "".join(parts)


def _section(title: str) -> list[str]:
    return ["", "", _RULE, f"# {title}", _RULE, ""]


def module_text(op: str, source: KernelSource, table: dict, strict: bool) -> str:
    """The exported module: kernels and launchers, the reference, the runtime, the dispatcher."""
    generated = {"STRICT", "LAUNCHERS", "KERNEL_SHA256", "CONFIG_FILE", "_DISPATCH", "choose", op}
    clash = (source.names & (_runtime_names() | generated)) | (_runtime_names() & generated)
    if clash:
        raise SourceError(f"names {', '.join(sorted(clash))} are used by the exported runtime")
    rt_imports, rt_body = _runtime_parts()
    launchers = "".join(f'\n    "{s}": {k["launcher"]},' for s, k in table["kernels"].items())
    sha = {s: k["sha256"] for s, k in table["kernels"].items()}
    modules = ", ".join(sorted({d.module for d in source.definitions}))
    return "\n".join([
        *_header(op, table), "", "from __future__ import annotations", "",
        *import_block(set(source.imports) | set(rt_imports)), "",
        "#: True: refuse to import where the configs were tuned on another GPU model or Triton",
        "#: version; False: warn, and run the PyTorch reference for the calls they would serve.",
        f"STRICT = {bool(strict)}",
        *_section(f"Kernels and launchers, from {modules}"),
        _join(source.definitions),
        *_section("Runtime: provenance check and dispatch"), rt_body,
        *_section("This export"),
        f"LAUNCHERS = {{{launchers}\n}}",
        f"KERNEL_SHA256 = {json.dumps(sha, indent=4, sort_keys=True)}",
        f'CONFIG_FILE = Path(__file__).with_name("{file_names(op)[1]}")',
        f'_DISPATCH = Dispatcher("{op}", LAUNCHERS, KERNEL_SHA256, {REFERENCE_NAME}, '
        "CONFIG_FILE, STRICT)",
        "choose = _DISPATCH.choose", "", "",
        f"def {op}(*inputs, out=None, allow_tf32=False, **options):",
        f'    """{op} of ``inputs`` (the arguments of eggsearch\'s reference) into ``out``, or a',
        "    new tensor, with the config chosen for their dtype and shape; returns the output.",
        "    ``allow_tf32`` and ``options`` name the precision contract and op options tuned.",
        '    """',
        "    return _DISPATCH(*inputs, out=out, allow_tf32=allow_tf32, **options)", ""])


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def is_export(path: Path) -> bool:
    """Whether ``path`` holds an export (its configs file names this format)."""
    for f in Path(path).glob("*_configs.json"):
        try:
            if json.loads(f.read_text()).get("format") == FORMAT:
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def check_out(out: Path) -> None:
    """An existing ``--out`` is replaced only if it is an earlier export (or empty)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_export(out))):
        raise UsageError(f"--out {out} exists and is not an eggsearch export; refusing to "
                         "replace it (choose another directory)")


def write_dir(out: Path, files: dict[str, str]) -> None:
    """Write ``files`` into a fresh directory, then swap it in for ``out`` atomically."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the export from other users
    try:
        for name, text in files.items():
            write_file(tmp / name, text)
        _fsync_dir(tmp)
        if out.exists() and _exchange(tmp, out):
            shutil.rmtree(tmp)  # now holds the previous export
        elif out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "export")
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_file(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
