"""Is model B better than model A? Paired comparison of two ``sts-eval --out`` decodes of the same sets.

    python -m clients.compare exp/eval_a.transcripts.jsonl exp/eval_b.transcripts.jsonl [--sets data/real:phone]
        [--pool dev=data/dev/single,data/dev/meet2,data/dev/meet3-4]

Both files hold one row per session (``clients.evaluate.transcript_row``: reference and hypothesis turns). For
each set and each session the word errors are scored again with meeteval: ORC-WER (hypothesis streams = output
channels; WER on single-speaker sessions) and cpWER (streams = speaker labels). Per set it prints the pooled
rates of A and B, their difference B - A in points with a 95 % interval from a paired bootstrap over sessions
(the same resampled sessions for A and B; a set's sessions are what varies between samples of the same
simulation), and how many sessions B scored better and worse. An interval that holds 0 means the sets cannot
tell the two models apart; small real sets often cannot. ``--pool NAME=SET,SET,...`` adds rows for sets taken
together (word errors summed over them; each set's sessions resampled within the set, a stratified bootstrap), for
a change too small for any one set to show.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clients.evaluate import seglst

METRICS = {"orc": "channel", "cp": "speaker"}  # metric -> hypothesis key that names a stream


@dataclass(frozen=True)
class Difference:
    """B against A on one set and metric: pooled rates (%), B - A (points) and its bootstrap interval."""

    set: str
    metric: str  # "orc" or "cp"
    sessions: int
    words: int  # reference words
    rate_a: float
    rate_b: float
    low: float  # 2.5th percentile of B - A over the bootstrap samples, points
    high: float  # 97.5th percentile
    better: int  # sessions with fewer errors under B
    worse: int

    @property
    def diff(self) -> float:
        return self.rate_b - self.rate_a


def read_transcripts(path: str | Path) -> dict[str, dict[str, dict[str, Any]]]:
    """set -> session_id -> row of an ``sts-eval --out`` transcripts file."""
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["set"]][row["session_id"]] = row
    return dict(out)


def _scored(row: dict[str, Any]) -> bool:
    """Whether a session's words count: its ``score_words`` (files written before it existed: whether the
    reference has any words, as sessions without a transcript have empty texts)."""
    return bool(row.get("score_words", any(t["text"].strip() for t in row["reference"])))


def session_errors(rows: list[dict[str, Any]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(errors, reference words) per session of ``rows`` under ``metric``, both (len(rows),) int64."""
    import meeteval

    by = METRICS[metric]
    ref: list[dict[str, Any]] = []
    hyp: list[dict[str, Any]] = []
    for r in rows:
        ref += seglst(r["session_id"], r["reference"])
        hyp += seglst(r["session_id"], r["hypothesis"], by)
    fn = meeteval.wer.orcwer if metric == "orc" else meeteval.wer.cpwer
    rates = fn(meeteval.io.SegLST(ref), meeteval.io.SegLST(hyp))
    errors = np.array([rates[r["session_id"]].errors for r in rows], dtype=np.int64)
    words = np.array([rates[r["session_id"]].length for r in rows], dtype=np.int64)
    return errors, words


Scores = tuple[np.ndarray, np.ndarray, np.ndarray]  # (sessions,) errors of A, errors of B, reference words


def paired_bootstrap(
    errors_a: np.ndarray, errors_b: np.ndarray, words: np.ndarray, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % interval (points) of the pooled rate difference B - A, sessions drawn with replacement ``resamples``
    times (the same draw for A and B). Inputs: (sessions,) errors of A and B and reference words."""
    return stratified_bootstrap([(errors_a, errors_b, words)], resamples, seed)


def stratified_bootstrap(strata: list[Scores], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """:func:`paired_bootstrap` of several sets pooled: each set's sessions drawn with replacement from that set
    (as many as it has), the errors and words of all summed; 95 % interval (points) of B - A."""
    rng = np.random.default_rng(seed)
    errors = np.zeros(resamples)
    words = np.zeros(resamples)
    for ea, eb, w in strata:
        idx = rng.integers(len(w), size=(resamples, len(w)))
        errors += eb[idx].sum(axis=1) - ea[idx].sum(axis=1)
        words += w[idx].sum(axis=1)
    diffs = 100.0 * errors / np.maximum(words, 1)
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def _difference(name: str, metric: str, strata: list[Scores], resamples: int, seed: int) -> Difference:
    """The :class:`Difference` of one set (one stratum) or of several pooled."""
    ea, eb, words = (np.concatenate(parts) for parts in zip(*strata, strict=True))
    low, high = stratified_bootstrap(strata, resamples, seed)
    total = max(int(words.sum()), 1)
    rate_a, rate_b = 100.0 * float(ea.sum()) / total, 100.0 * float(eb.sum()) / total
    better, worse = int((eb < ea).sum()), int((eb > ea).sum())
    return Difference(name, metric, len(words), int(words.sum()), rate_a, rate_b, low, high, better, worse)


def compare(
    a: dict[str, dict[str, dict[str, Any]]],
    b: dict[str, dict[str, dict[str, Any]]],
    sets: list[str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
    pools: dict[str, list[str]] | None = None,
) -> list[Difference]:
    """One :class:`Difference` per set (those of ``sets``, else every set in both) and metric; a set's sessions
    and their references must be the same in both decodes. Then one per pool (name -> its sets) and metric, over
    the pool's sets that have the metric (cpWER: those with more than one reference speaker)."""
    names = list(sets or [s for s in a if s in b])
    pools = pools or {}
    names += [s for members in pools.values() for s in members if s not in names]
    out = []
    scores: dict[tuple[str, str], Scores] = {}
    for name in names:
        if name not in a or name not in b:
            raise ValueError(f"set {name!r} is not in both transcripts")
        if set(a[name]) != set(b[name]):
            raise ValueError(f"set {name!r}: the two decodes hold different sessions")
        if any(a[name][i]["reference"] != b[name][i]["reference"] for i in a[name]):
            raise ValueError(f"set {name!r}: the two decodes have different references (a set made again?)")
        ids = sorted(sid for sid, r in a[name].items() if _scored(r))
        if not ids:
            continue
        rows_a, rows_b = [a[name][i] for i in ids], [b[name][i] for i in ids]
        multi = any(len({t["speaker"] for t in r["reference"]}) > 1 for r in rows_a)
        for metric in ("orc", "cp") if multi else ("orc",):
            ea, words = session_errors(rows_a, metric)
            eb, _ = session_errors(rows_b, metric)
            scores[name, metric] = (ea, eb, words)
            if sets is None or name in sets:
                out.append(_difference(name, metric, [scores[name, metric]], resamples, seed))
    for pool, members in pools.items():
        for metric in ("orc", "cp"):
            strata = [scores[m, metric] for m in members if (m, metric) in scores]
            if strata:
                label = f"{pool} ({len(strata)} set{'s' * (len(strata) > 1)})"
                out.append(_difference(label, metric, strata, resamples, seed))
    return out


def markdown(diffs: list[Difference], name_a: str, name_b: str) -> str:
    lines = [
        f"A = `{name_a}`, B = `{name_b}`; B - A in points, 95 % paired-bootstrap interval over sessions",
        "",
        "| set | metric | sessions | words | A | B | B - A [95 %] | sessions B better / worse |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in diffs:
        metric = "WER / ORC-WER" if d.metric == "orc" else "cpWER"
        lines.append(f"| {d.set} | {metric} | {d.sessions} | {d.words} | {d.rate_a:.1f}% | {d.rate_b:.1f}% | "
                     f"{d.diff:+.1f} [{d.low:+.1f}, {d.high:+.1f}] | {d.better} / {d.worse} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="transcripts of model A (sts-eval --out OUT writes OUT.transcripts.jsonl)")
    p.add_argument("b", help="transcripts of model B, the same sets")
    p.add_argument("--sets", nargs="*", help="sets to compare (default: every set in both files)")
    p.add_argument("--pool", action="append", default=[], metavar="NAME=SET,SET,...",
                   help="also compare these sets taken together (repeatable)")  # fmt: skip
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap samples")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    pools: dict[str, list[str]] = {}
    for item in args.pool:
        name, _, members = item.partition("=")
        if not name or not members:
            p.error(f"--pool wants NAME=SET,SET,...: {item!r}")
        pools[name] = [m for m in members.split(",") if m]
    try:
        diffs = compare(read_transcripts(args.a), read_transcripts(args.b), args.sets, args.resamples, args.seed, pools)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        sys.exit(f"compare: {e}")
    sys.stdout.write(markdown(diffs, args.a, args.b))


if __name__ == "__main__":
    main()
