"""Output of the evaluation commands: a report printed as Markdown and kept as OUT.json + OUT.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def publish(report: dict[str, Any], md: str, out: str | None) -> None:
    """Print ``md``; with ``out``, also write ``out + ".json"`` (the report) and ``out + ".md"``."""
    print(md)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out + ".json").write_text(json.dumps(report, indent=2))
        Path(out + ".md").write_text(md)
