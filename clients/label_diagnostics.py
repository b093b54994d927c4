"""Why labelling loses what it loses: how well speaker embeddings tell the voices of a meeting apart, on the
model's own turns and on the reference turns.

    python -m clients.label_diagnostics data/tune/meet2 data/tune/meet3-4 [--model DIR] [--speaker-model DIR]

Per set, the equal error rate (EER) of "same speaker" decided by the cosine of two turns' embeddings, over
every pair of turns of one session with at least ``--min-seconds`` of audio each, for:

- ``reference``: the reference turns (oracle segmentation: what the labeller sees at best);
- ``model``: the model's turns (streamed as the service streams), each named by the reference speaker that
  :func:`clients.evaluate.best_labelled` gives it;
- ``model, one voice``: those of the model's turns whose words all lie in one reference speaker's turns.

Each turn's audio is cut as the service's labeller cuts it: its span minus the spans of the turns that overlap
it (:func:`model.speaker.exclusive_span`). When the model's turns separate far worse than the reference turns,
the labeller is losing to the segmentation (turns that run over a speaker change, or hold speech the model
missed on the other channel), not to the embedder.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from clients.evaluate import RefSession, best_labelled, label_sessions, load_set, recognize_sessions
from model.recognizer import Recognizer, set_num_threads
from model.report import publish
from model.speaker import SAMPLE_RATE, Embedder, cut, exclusive_span, load_embedder
from service.schemas import Turn

Span = tuple[str, float, float]  # speaker, start, end (seconds)


def equal_error_rate(same: np.ndarray, diff: np.ndarray) -> float:
    """EER of accepting a pair as "same" when its score is at least a threshold: the rate where the share of
    same pairs rejected equals the share of different pairs accepted (nan without pairs of both kinds)."""
    if not len(same) or not len(diff):
        return float("nan")
    thresholds = np.unique(np.concatenate([same, diff]))
    frr = np.searchsorted(np.sort(same), thresholds, side="left") / len(same)  # same pairs below the threshold
    far = 1.0 - np.searchsorted(np.sort(diff), thresholds, side="left") / len(diff)  # diff pairs at or above
    return float(np.min(np.maximum(frr, far)))


def speaker_at(s: RefSession, t: float, slack: float = 0.1) -> str | None:
    """The reference speaker talking at ``t`` seconds (the turn centred nearest when several; None if none)."""
    talking = [r for r in s.turns if r["start"] - slack <= t <= r["end"] + slack]
    if not talking:
        return None
    return min(talking, key=lambda r: abs((r["start"] + r["end"]) / 2 - t))["speaker"]


def one_voice(s: RefSession, turn: Turn) -> bool:
    """Whether every word of ``turn`` (at its midpoint) lies in the turns of one reference speaker."""
    return len({speaker_at(s, (w.start + w.end) / 2) for w in turn.words} - {None}) <= 1


def embed_spans(
    s: RefSession, spans: list[Span], embedder: Embedder, min_seconds: float
) -> list[tuple[str, np.ndarray] | None]:
    """(speaker, embedding) of each of ``spans`` of session ``s``, its audio cut minus the other spans that
    overlap it; None where less than ``min_seconds`` of audio is left."""
    out: list[tuple[str, np.ndarray] | None] = []
    for i, (speaker, start, end) in enumerate(spans):
        others = [(a, b) for j, (_, a, b) in enumerate(spans) if j != i and a < end and b > start]
        audio = cut(s.audio, exclusive_span(start, end, others))
        out.append((speaker, embedder.embed(audio)) if len(audio) >= min_seconds * SAMPLE_RATE else None)
    return out


def pair_scores(items: list[tuple[str, np.ndarray]]) -> tuple[list[float], list[float]]:
    """Cosines of the same-speaker and of the different-speaker pairs among ``items`` (speaker, unit embedding)."""
    same: list[float] = []
    diff: list[float] = []
    for i, (a, ea) in enumerate(items):
        for b, eb in items[i + 1 :]:
            (same if a == b else diff).append(float(ea @ eb))
    return same, diff


def diagnose(rec: Recognizer, spec: str, embedder: Embedder, min_seconds: float = 0.5,
             limit: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The EERs of one set (see the module docstring), with the pair counts and how many turns had one voice."""
    sessions = [s for s in load_set(spec, limit) if s.sample_rate == SAMPLE_RATE]
    # turns only: the oracle names them
    decoded = label_sessions(recognize_sessions(rec, sessions), sessions, spell=rec.spell)
    pairs: dict[str, tuple[list[float], list[float]]] = {
        k: ([], []) for k in ("reference", "model", "model, one voice")
    }
    turns = pure = 0
    for s, d in zip(sessions, decoded, strict=True):
        named = best_labelled(s, d.turns)
        voiced = embed_spans(s, [(t.speaker, t.start, t.end) for t in named], embedder, min_seconds)
        single = [one_voice(s, t) for t in named]
        turns, pure = turns + len(named), pure + sum(single)
        kinds = {
            "reference": embed_spans(s, [(r["speaker"], r["start"], r["end"]) for r in s.turns], embedder, min_seconds),
            "model": voiced,
            # the same embeddings: cut minus all the model's overlapping turns, as the labeller cuts them
            "model, one voice": [v for v, one in zip(voiced, single, strict=True) if one],
        }
        for kind, items in kinds.items():
            same, diff = pair_scores([v for v in items if v is not None])
            pairs[kind][0].extend(same)
            pairs[kind][1].extend(diff)
    out: dict[str, Any] = {"sessions": len(sessions), "model_turns": turns, "one_voice_turns": pure}
    for kind, (same, diff) in pairs.items():
        out[kind] = {"eer": equal_error_rate(np.asarray(same), np.asarray(diff)), "same_pairs": len(same),
                     "diff_pairs": len(diff)}  # fmt: skip
    return out


def markdown(report: dict[str, Any]) -> str:
    rows = ["| set | sessions | model turns with one voice | EER reference turns | EER model turns | EER model "
            "turns with one voice |", "|---|---|---|---|---|---|"]  # fmt: skip
    for spec, e in report["sets"].items():
        eer = [f"{100 * e[k]['eer']:.1f}% ({e[k]['same_pairs']} / {e[k]['diff_pairs']})"
               for k in ("reference", "model", "model, one voice")]  # fmt: skip
        rows.append(
            f"| {spec} | {e['sessions']} | {e['one_voice_turns']} / {e['model_turns']} | " + " | ".join(eer) + " |"
        )
    return (
        f"Model `{report['model']}`, speaker embedder {report['embedder']}; EER (same / different-speaker "
        "pairs)\n\n" + "\n".join(rows) + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+", help="session-set folders of multi-speaker meetings, DIR or DIR:SUBSET")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the bundled model)")
    p.add_argument("--speaker-model", default=None, help="speaker-embedder folder (default: the bundled one)")
    p.add_argument("--min-seconds", type=float, default=0.5, help="turns with less audio are left out")
    p.add_argument("--limit", type=int, default=None, help="at most this many sessions per set")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    a = p.parse_args(argv)
    set_num_threads(1)
    rec = Recognizer.from_pretrained(a.model)
    embedder = load_embedder(a.speaker_model)
    report: dict[str, Any] = {"model": rec.model_name, "embedder": a.speaker_model or "bundled", "sets": {}}
    for spec in a.sets:
        report["sets"][spec] = diagnose(rec, spec, embedder, a.min_seconds, a.limit)
        print(f"{spec}: {report['sets'][spec]}", file=sys.stderr)
    publish(report, markdown(report), a.out)


if __name__ == "__main__":
    main()
