"""Long streams from a stored session set: every GROUP consecutive sessions joined end to end into one.

    .venv/bin/python scripts/long_streams.py data/dev/single exp/long_single40 --group 40
    .venv/bin/sts-eval exp/long_single40 data/dev/single

The recognizer is trained on sessions of 3-14 s; a user streams meetings of minutes or hours. Decoding the joined
set and the set itself with ``sts-eval`` shows what a long stream costs (the same audio and words either way).
Turns keep their times, shifted by the audio before them; in multi-speaker sets each source session's speakers
get a suffix (``S1-0``, ``S1-1``, ...) so that the people of different sessions stay different people (a joined
meeting then has more speakers than any training meeting); in single-speaker sets every turn stays ``S1``, so
that the joined set is scored by WER like its source.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from model.data.audio import read_audio, write_flac
from model.data.voices import SAMPLE_RATE


def join(rows: list[dict[str, Any]], src: Path, out: Path, session_id: str, single: bool) -> dict[str, Any]:
    """Write the sessions ``rows`` of folder ``src`` joined as ``out/<session_id>.flac``; return its row."""
    audio, turns, families, offset = [], [], {}, 0.0
    for j, row in enumerate(rows):
        x = read_audio(src / row["audio"])
        suffix = "" if single else f"-{j}"
        turns += [{**t, "speaker": t["speaker"] + suffix, "start": t["start"] + offset, "end": t["end"] + offset}
                  for t in row["turns"]]  # fmt: skip
        families.update({k + suffix: v for k, v in row.get("meta", {}).get("families", {}).items()})
        audio.append(x)
        offset += len(x) / SAMPLE_RATE
    write_flac(out / f"{session_id}.flac", np.concatenate(audio))
    keep = {k: v for k, v in rows[0].items() if k not in ("session_id", "audio", "duration", "turns", "meta")}
    return {**keep, "session_id": session_id, "audio": f"{session_id}.flac", "duration": round(offset, 4),
            "turns": turns, "meta": {"families": families}}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="session-set folder with sessions.jsonl")
    p.add_argument("out", type=Path)
    p.add_argument("--group", type=int, default=10, help="sessions per joined stream")
    a = p.parse_args(argv)
    rows = [json.loads(line) for line in (a.source / "sessions.jsonl").read_text().splitlines() if line.strip()]
    single = all(len({t["speaker"] for t in r["turns"]}) <= 1 for r in rows)
    a.out.mkdir(parents=True, exist_ok=True)
    joined = [join(rows[i : i + a.group], a.source, a.out, f"long-{a.source.name}-{i // a.group:02d}", single)
              for i in range(0, len(rows), a.group)]  # fmt: skip
    (a.out / "sessions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in joined))
    print(f"{len(joined)} streams of up to {a.group} sessions in {a.out}")


if __name__ == "__main__":
    main()
