"""The run's history: one JSON object per line in DIR/history.jsonl.

Why a file of facts: the harness only records what it saw (what was sent, what was
answered, what arrived, which fault started and healed when) and the checker
(check.py) judges afterwards, from the file alone. So a run can be judged again, by
hand or by a newer checker, and a violation can be traced to the lines that show it.

Every record has `t`, the harness's monotonic clock in seconds (time.monotonic(): only
differences mean anything), and `kind`; the other fields depend on the kind and are
listed in docs/RELIABILITY.md ("History records").
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator


class History:
    """Appends records to a JSONL file, one flushed line each (a killed harness loses
    at most the line being written)."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "a", encoding="utf-8", buffering=1)
        self.counts: dict[str, int] = {}

    def now(self) -> float:
        return time.monotonic()

    def record(self, kind: str, t: float | None = None, **fields: Any) -> dict:
        rec = {"t": round(self.now() if t is None else t, 6), "kind": kind, **fields}
        self._file.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return rec

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_history(path: str) -> list[dict]:
    """Every record of a history file, in file order; a torn last line is skipped."""
    return list(iter_history(path))


def iter_history(path: str) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue
