"""Reading the agents' replies: a JSON object checked against a schema, or fenced code blocks.

A schema is a small nested description: a dict maps keys to schemas (a key ending in ``?`` is
optional), a one-element list is "a list of", and a type (``str``, ``int``, ``float``, ``bool``,
``object`` for anything) is a leaf; a tuple of strings is an enumeration. A reply that does not
fit raises :class:`MalformedReply` with a reason the agent is shown when it is asked again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


class MalformedReply(ValueError):
    """A reply that does not have the form asked for; the message says what is wrong."""


def parse_json(text: str, schema: object) -> dict:
    """The first JSON object in ``text`` (fenced or not), checked against ``schema``."""
    obj = _first_object(text)
    errors = check(obj, schema, "reply")
    if errors:
        raise MalformedReply("; ".join(errors[:5]))
    return obj


def _first_object(text: str) -> dict:
    candidates = [body for lang, body in _FENCE.findall(text) if lang.lower() in ("json", "")]
    candidates.append(text)
    decoder = json.JSONDecoder()
    error = "no JSON object found"
    for chunk in candidates:
        for match in re.finditer(r"\{", chunk):
            try:
                obj, _ = decoder.raw_decode(chunk, match.start())
            except json.JSONDecodeError as exc:
                error = f"the JSON does not parse: {exc.msg} (line {exc.lineno})"
                continue
            if isinstance(obj, dict):
                return obj
    raise MalformedReply(error)


def check(value: object, schema: object, where: str) -> list[str]:
    """Everything wrong with ``value`` against ``schema`` (empty when it fits)."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where} must be a JSON object"]
        errors = []
        for raw_key, sub in schema.items():
            key, optional = raw_key.rstrip("?"), raw_key.endswith("?")
            if key not in value:
                if not optional:
                    errors.append(f"{where} lacks the key '{key}'")
                continue
            errors += check(value[key], sub, f"{where}.{key}")
        return errors
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where} must be a JSON list"]
        errors = []
        for i, item in enumerate(value):
            errors += check(item, schema[0], f"{where}[{i}]")
        return errors
    if isinstance(schema, tuple):
        return [] if value in schema else [f"{where} must be one of {', '.join(schema)}"]
    if schema is object:
        return []
    if schema is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif schema is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, schema)
    return [] if ok else [f"{where} must be a {schema.__name__}"]


@dataclass(frozen=True)
class CodeReply:
    """The coder's reply: a Triton module and its search space (YAML text)."""

    source: str
    space_yaml: str
    notes: str


def parse_code(text: str) -> CodeReply:
    """The fenced ```python block and the fenced ```yaml block of a reply."""
    python, yaml_text = [], []
    for lang, body in _FENCE.findall(text):
        lang = lang.lower()
        if lang in ("python", "py", "python3"):
            python.append(body)
        elif lang in ("yaml", "yml"):
            yaml_text.append(body)
        elif not lang:  # untagged: tell by the content
            (python if re.search(r"^\s*(import|from|def|@)", body, re.M) else
             yaml_text).append(body)
    if not python:
        raise MalformedReply("the reply has no ```python code block with the module")
    if not yaml_text:
        raise MalformedReply("the reply has no ```yaml block with the search space")
    notes = _FENCE.sub("", text).strip()
    return CodeReply(max(python, key=len).strip() + "\n", yaml_text[0].strip() + "\n",
                     notes[:1000])
