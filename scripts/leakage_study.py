"""Study: cross-channel leakage in ``sts-eval --out OUT`` transcripts (OUT.transcripts.jsonl), session 15.

    .venv/bin/python scripts/leakage_study.py exp/eval_cand20.transcripts.jsonl exp/eval_candbase20.transcripts.jsonl

Per multi-speaker set of each file, prints:
- ORC-WER split into substitutions / deletions / insertions (meeteval ``orcwer``, % of reference words);
- leakage: of the hypothesis words in turns that overlap a turn on the other channel, the share that also occurs in
  that other turn, next to the same share for overlapping reference turns of different speakers (chance level);
- what dropping the copies would give: for two overlapping turns on different channels, a word of one is a copy
  if the same word lies in the other within ``--window`` seconds (word times spread over each turn's span by
  characters: the transcripts keep turn times only); the copies are dropped from whichever turn has the larger
  share of its words copied, turns left empty disappear; ORC-WER and cpWER before -> after.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter, defaultdict
from typing import Any

import meeteval
import numpy as np

from clients.evaluate import _word_ends

Row = dict[str, Any]


def _overlap(a: Row, b: Row) -> float:
    return min(a["end"], b["end"]) - max(a["start"], b["start"])


def word_times(turn: Row) -> tuple[list[str], list[float]]:
    """A turn's words and their approximate centre times (``sts-eval``'s word ends: its span shared by characters)."""
    words, ends = _word_ends(turn)
    return words, [(a + b) / 2 for a, b in zip([turn["start"], *ends[:-1]], ends, strict=True)]


def _copies(a: tuple[list[str], list[float]], b: tuple[list[str], list[float]], window: float) -> set[int]:
    """Indices of the words of ``a`` that occur in ``b`` within ``window`` seconds."""
    theirs = list(zip(*b, strict=True))
    return {
        k for k, (w, t) in enumerate(zip(*a, strict=True)) if any(w == v and abs(t - s) < window for v, s in theirs)
    }


def without_copies(hyp: list[Row], window: float) -> list[Row]:
    """``hyp`` turns with the cross-channel copies dropped (see the module docstring)."""
    timed = [word_times(t) for t in hyp]
    drop: list[set[int]] = [set() for _ in hyp]
    for i, j in itertools.combinations(range(len(hyp)), 2):
        if hyp[i]["channel"] == hyp[j]["channel"] or _overlap(hyp[i], hyp[j]) <= 0:
            continue
        copies_a, copies_b = _copies(timed[i], timed[j], window), _copies(timed[j], timed[i], window)
        if copies_a:
            if len(copies_a) / len(timed[i][0]) >= len(copies_b) / len(timed[j][0]):
                drop[i] |= copies_a
            else:
                drop[j] |= copies_b
    out = []
    for turn, (words, _), gone in zip(hyp, timed, drop, strict=True):
        kept = [w for k, w in enumerate(words) if k not in gone]
        if kept:
            out.append({**turn, "text": " ".join(kept)})
    return out


def shared_share(turns: list[Row], group: str) -> tuple[int, int]:
    """(words in turns that overlap a turn of another ``group`` value by > 0.3 s, of them also in that turn)."""
    total = shared = 0
    for a in turns:
        for b in turns:
            if a is not b and a[group] != b[group] and _overlap(a, b) > 0.3:
                ca, cb = Counter(a["text"].split()), Counter(b["text"].split())
                total += sum(ca.values())
                shared += sum((ca & cb).values())
    return total, shared


def errors(rows: list[Row], hyps: list[list[Row]], by: str) -> dict[str, float]:
    """ORC-WER (``by`` = "channel") or cpWER (``by`` = "speaker") of ``hyps``, and its parts, % of reference words."""
    ref, hyp = [], []
    for r, h in zip(rows, hyps, strict=True):
        sid = r["session_id"]
        ref += [{"session_id": sid, "speaker": t["speaker"], "start_time": t["start"], "end_time": t["end"],
                 "words": t["text"]} for t in r["reference"]]  # fmt: skip
        hyp += [{"session_id": sid, "speaker": str(t[by]), "start_time": t["start"], "end_time": t["end"],
                 "words": t["text"]} for t in h] or [{"session_id": sid, "speaker": "none", "start_time": 0.0,
                                                       "end_time": 0.0, "words": ""}]  # fmt: skip
    fn = meeteval.wer.orcwer if by == "channel" else meeteval.wer.cpwer
    rates = fn(meeteval.io.SegLST(ref), meeteval.io.SegLST(hyp)).values()
    n = sum(x.length for x in rates)
    return {
        k: 100 * sum(getattr(x, k) for x in rates) / n for k in ("errors", "substitutions", "deletions", "insertions")
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("transcripts", nargs="+")
    p.add_argument("--window", type=float, default=0.6, help="seconds between a word and its copy")
    a = p.parse_args()
    for path in a.transcripts:
        sets: dict[str, list[Row]] = defaultdict(list)
        for line in open(path):
            row = json.loads(line)
            if "meet" in row["set"] or "pairs" in row["set"]:  # the multi-speaker sets
                sets[row["set"]].append(row)
        print(f"== {path}")
        for name, rows in sets.items():
            orc = errors(rows, [r["hypothesis"] for r in rows], "channel")
            hyp_total, hyp_shared = np.sum([shared_share(r["hypothesis"], "channel") for r in rows], axis=0)
            ref_total, ref_shared = np.sum([shared_share(r["reference"], "speaker") for r in rows], axis=0)
            leak, chance = 100 * hyp_shared / max(1, hyp_total), 100 * ref_shared / max(1, ref_total)
            fixed = [without_copies(r["hypothesis"], a.window) for r in rows]
            after = errors(rows, fixed, "channel")
            cp, cp_after = (errors(rows, h, "speaker")["errors"] for h in ([r["hypothesis"] for r in rows], fixed))
            print(
                f"{name}: ORC-WER {orc['errors']:.1f} (sub {orc['substitutions']:.1f} / del {orc['deletions']:.1f}"
                f" / ins {orc['insertions']:.1f}); words shared with an overlapping turn on the other channel"
                f" {leak:.1f} % of {hyp_total} (reference {chance:.1f} %"
                f" of {ref_total}); copies dropped: ORC-WER -> {after['errors']:.1f}, cpWER {cp:.1f} -> {cp_after:.1f},"
                f" turns {sum(len(r['hypothesis']) for r in rows)} -> {sum(map(len, fixed))}"
            )


if __name__ == "__main__":
    main()
