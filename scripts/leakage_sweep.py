"""Decode sets once with the bundled recognizer, then assemble and label them under several leakage rules.

    .venv/bin/python scripts/leakage_sweep.py data/tune/meet2 data/tune/meet3-4 data/tune/single \
        --sweep echo_grace=0,0.2,0.4,0.8,1.5

Each ``--sweep NAME=V1,V2,...`` (repeat for a grid) names a field of the turn assembler's
:class:`service.turns.LeakageRules` (``copy_window``, ``echo_cover``, ``echo_grace``); the others keep the
service's defaults. Prints a Markdown table: per setting, ORC-WER / cpWER / turns found of each set and the mean of
(ORC-WER + cpWER) / 2 over the sets (``clients.evaluate.sweep_score``, what ``sts-eval --sweep`` minimises). The
service's ``echo_grace`` was chosen with it in session 30 on the tuning sets.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from clients.evaluate import _grid_search, label_sessions, load_set, parse_sweep, recognize_sessions, score, sweep_score
from model.recognizer import Recognizer
from model.speaker import load_embedder
from service.turns import LeakageRules


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+", help="session-set folders, DIR or DIR:SUBSET")
    p.add_argument("--sweep", action="append", required=True, metavar="NAME=V1,V2,...", help="a leakage rule's values")
    a = p.parse_args()
    grid = parse_sweep(a.sweep, tuple(f.name for f in fields(LeakageRules)))
    rec = Recognizer.from_pretrained()
    embedder = load_embedder()
    decoded = {}
    for spec in a.sets:
        sessions = load_set(spec, None)
        decoded[spec] = (sessions, recognize_sessions(rec, sessions))

    def run(setting: dict[str, float]) -> dict[str, Any]:
        rules = LeakageRules(**setting)
        return {"sets": {spec: score(sessions, label_sessions(recordings, sessions, embedder, spell=rec.spell,
                                                              leakage=rules))
                         for spec, (sessions, recordings) in decoded.items()}}  # fmt: skip

    def cell(e: dict[str, Any]) -> str:
        return f"{100 * e['orc_wer']['rate']:.2f} / {100 * e['cp_wer']['rate']:.2f} / {e['turns']['found']}"

    title = f"Model `{rec.model_name}`, leakage rule sweep (cells: ORC-WER / cpWER / turns found)"
    print(_grid_search(grid, run, cell, sweep_score, title)[1], end="")


if __name__ == "__main__":
    main()
