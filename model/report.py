"""Output of the evaluation commands: a report printed as Markdown and kept as OUT.json + OUT.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

GROUPINGS = ("by_family", "by_overlap", "by_noise")  # sub-entries of a set: voice families, overlap and noise bins


def group_rows(sets: dict[str, dict[str, Any]], row: Callable[[str, dict[str, Any]], str]) -> list[str]:
    """Table rows: each set, then each of its groups (``GROUPINGS``) as ``"set (group)"``."""
    rows = []
    for name, entry in sets.items():
        rows.append(row(name, entry))
        for grouping in GROUPINGS:
            rows += [row(f"{name} ({g})", sub) for g, sub in entry.get(grouping, {}).items()]
    return rows


def publish(report: dict[str, Any], md: str, out: str | None) -> None:
    """Print ``md``; with ``out``, also write ``out + ".json"`` (the report) and ``out + ".md"``."""
    print(md)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out + ".json").write_text(json.dumps(report, indent=2))
        Path(out + ".md").write_text(md)
