"""Decode sets once with the bundled recognizer, then assemble and label them at several echo graces.

    .venv/bin/python scripts/echo_grace_sweep.py data/tune/meet2 data/tune/meet3-4 data/tune/single \
        --grace 0 0.2 0.4 0.8 1.5

Prints a Markdown table: per grace, ORC-WER / cpWER / turns found of each set and the mean of (ORC-WER + cpWER) / 2
over the sets (``clients.evaluate.sweep_score``, what ``sts-eval --sweep`` minimises); the turn assembler's
``echo_grace`` (``service/turns.py``) was chosen with it in session 30 on the tuning sets.
"""

from __future__ import annotations

import argparse
from typing import Any

from clients.evaluate import _grid_search, label_sessions, load_set, recognize_sessions, score, sweep_score
from model.recognizer import Recognizer
from model.speaker import load_embedder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+", help="session-set folders, DIR or DIR:SUBSET")
    p.add_argument("--grace", nargs="+", type=float, default=[0.0, 0.2, 0.4, 0.8, 1.5], help="seconds")
    a = p.parse_args()
    rec = Recognizer.from_pretrained()
    embedder = load_embedder()
    decoded = {}
    for spec in a.sets:
        sessions = load_set(spec, None)
        decoded[spec] = (sessions, recognize_sessions(rec, sessions))

    def run(setting: dict[str, float]) -> dict[str, Any]:
        return {"sets": {spec: score(sessions, label_sessions(recordings, sessions, embedder, spell=rec.spell,
                                                              echo_grace=setting["echo_grace"]))
                         for spec, (sessions, recordings) in decoded.items()}}  # fmt: skip

    def cell(e: dict[str, Any]) -> str:
        return f"{100 * e['orc_wer']['rate']:.2f} / {100 * e['cp_wer']['rate']:.2f} / {e['turns']['found']}"

    title = f"Model `{rec.model_name}`, echo grace sweep (cells: ORC-WER / cpWER / turns found)"
    print(_grid_search({"echo_grace": a.grace}, run, cell, sweep_score, title)[1], end="")


if __name__ == "__main__":
    main()
