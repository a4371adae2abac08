"""Stage-aware memory: a compact record per stage instead of ever-growing transcripts.

Each stage (``one``: structures; ``two``: tuning) keeps short entries of what was tried, measured,
rejected or failed and why. Agents see the rendered memory of their own stage, and the tuning
advisor also sees stage one's, so the lessons of stage one reach stage two. Entries are bounded
in number and length; the oldest go first, except those that record an accepted structure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

KINDS = ("planned", "tried", "rejected", "failed", "diagnosed", "accepted", "measured",
         "advised", "error")


@dataclass(frozen=True)
class MemoryEntry:
    stage: str
    kind: str
    subject: str
    detail: str

    def line(self) -> str:
        return f"- [{self.kind}] {self.subject}: {self.detail}"


class StageMemory:
    """The memory of one stage.

    Args:
        stage: ``one`` or ``two``.
        max_entries: entries kept.
        max_chars: characters kept of one entry's detail.
    """

    def __init__(self, stage: str, max_entries: int = 16, max_chars: int = 400):
        self.stage, self.max_entries, self.max_chars = stage, max_entries, max_chars
        self._entries: list[MemoryEntry] = []

    def add(self, kind: str, subject: str, detail: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown memory kind '{kind}'")
        detail = " ".join(str(detail).split())
        if len(detail) > self.max_chars:
            detail = detail[: self.max_chars - 3] + "..."
        self._entries.append(MemoryEntry(self.stage, kind, subject, detail))
        while len(self._entries) > self.max_entries:
            drop = next((i for i, e in enumerate(self._entries) if e.kind != "accepted"), 0)
            del self._entries[drop]

    @property
    def entries(self) -> tuple[MemoryEntry, ...]:
        return tuple(self._entries)

    def render(self) -> str:
        """The memory as prompt text (``(nothing yet)`` when empty)."""
        return "\n".join(e.line() for e in self._entries) or "(nothing yet)"

    def to_list(self) -> list[dict]:
        return [asdict(e) for e in self._entries]
