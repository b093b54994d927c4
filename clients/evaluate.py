"""Evaluate a model the way it serves: streaming decode, turn assembly, then meeteval scores.

    sts-eval --model model/pretrained data/dev/single data/dev/meet2 data/real:single --out exp/eval

Each set is a folder with ``sessions.jsonl`` (``session_id``, ``audio`` relative to the folder, ``turns`` of
``speaker, start, end, text``; optional ``meta.families``, ``subset`` and ``wer``), as written by
``model.data.devset`` and ``model.data.realspeech``; ``DIR:SUBSET`` keeps the sessions of one subset.
Audio goes through ``Stream.accept_waveform`` in 320 ms pieces and ``decode_streams`` batches many sessions,
exactly as the service does; the turns come from the service's :class:`TurnAssembler`.

Reported per set (and per voice family): WER (single-speaker sets), ORC-WER and cpWER (meeteval), turn
counts (found / reference), ``<sot>``/``<eot>`` emission time minus reference start/end (median, p90) for
reference turns matched to the hypothesis turn that overlaps them most, and the decode real-time factor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from model.recognizer import Recognizer, set_num_threads
from model.report import publish
from model.speaker import SpeakerEmbedder
from service.schemas import Turn
from service.speakers import make_labeller
from service.turns import TurnAssembler


@dataclass
class RefSession:
    session_id: str
    audio: np.ndarray  # (num_samples,) float32
    sample_rate: int
    turns: list[dict[str, Any]]  # speaker, start, end, text
    family: str  # voice family of every speaker, or "mixed" / "real"
    score_words: bool = True  # False where the reference has no transcript

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def load_set(spec: str, limit: int | None = None) -> list[RefSession]:
    """Sessions of ``DIR`` or ``DIR:SUBSET``."""
    directory, _, subset = spec.partition(":")
    root = Path(directory)
    out: list[RefSession] = []
    for line in (root / "sessions.jsonl").read_text().splitlines():
        r = json.loads(line)
        if subset and r.get("subset") != subset:
            continue
        audio, rate = sf.read(str(root / r["audio"]), dtype="float32", always_2d=True)
        families = set((r.get("meta") or {}).get("families", {}).values())
        family = families.pop() if len(families) == 1 else ("mixed" if families else "real")
        out.append(RefSession(r["session_id"], audio.mean(axis=1), rate, r["turns"], family, bool(r.get("wer", True))))
        if limit and len(out) >= limit:
            break
    return out


@dataclass
class Decoded:
    turns: list[Turn] = field(default_factory=list)
    cpu_seconds: float = 0.0


def decode_sessions(
    rec: Recognizer, sessions: list[RefSession], batch: int = 16, embedder: SpeakerEmbedder | None = None
) -> list[Decoded]:
    """Stream every session in 320 ms pieces, ``batch`` sessions decoded together; speakers labelled by voice
    with ``embedder`` (as the service does), else by channel."""
    results = [Decoded() for _ in sessions]
    for b0 in range(0, len(sessions), batch):
        group = list(range(b0, min(b0 + batch, len(sessions))))
        streams = {i: rec.create_stream() for i in group}
        labellers = {i: make_labeller(embedder) for i in group}
        assemblers = {i: TurnAssembler(labellers[i]) for i in group}
        pos = dict.fromkeys(group, 0)
        t0 = time.process_time()
        while not all(s.is_done for s in streams.values()):
            for i, s in streams.items():
                sess = sessions[i]
                piece = int(rec.chunk_seconds * sess.sample_rate)
                if pos[i] < len(sess.audio):
                    labellers[i].accept_waveform(sess.sample_rate, sess.audio[pos[i] : pos[i] + piece])
                    s.accept_waveform(sess.sample_rate, sess.audio[pos[i] : pos[i] + piece])
                    pos[i] += piece
                elif not s.finished:
                    s.input_finished()
            rec.decode_streams(list(streams.values()))
            for i, s in streams.items():
                results[i].turns += assemblers[i].push(s.pop_events())
                assemblers[i].partials()  # as the service: the labeller learns which turns are open
        for i in group:
            results[i].turns += assemblers[i].finalize()
        cpu = time.process_time() - t0
        total = sum(sessions[i].duration for i in group)
        for i in group:
            results[i].cpu_seconds = cpu * sessions[i].duration / total
    return results


def _seglst_ref(s: RefSession) -> list[dict[str, Any]]:
    return [{"session_id": s.session_id, "speaker": t["speaker"], "start_time": t["start"], "end_time": t["end"],
             "words": t["text"]} for t in s.turns]  # fmt: skip


def _seglst_hyp(s: RefSession, turns: Iterable[Turn], by: str) -> list[dict[str, Any]]:
    out = [{"session_id": s.session_id, "speaker": str(getattr(t, by)), "start_time": t.start, "end_time": t.end,
            "words": t.text} for t in turns]  # fmt: skip
    # meeteval needs every session present on both sides
    return out or [{"session_id": s.session_id, "speaker": "none", "start_time": 0.0, "end_time": 0.0, "words": ""}]


def _error_rate(kind: str, sessions: list[RefSession], decoded: list[Decoded]) -> dict[str, float]:
    import meeteval

    ref: list[dict[str, Any]] = []
    hyp: list[dict[str, Any]] = []
    for s, d in zip(sessions, decoded, strict=True):
        if s.score_words:
            ref += _seglst_ref(s)
            hyp += _seglst_hyp(s, d.turns, "channel" if kind == "orc" else "speaker")
    if not ref:
        return {}
    fn = meeteval.wer.orcwer if kind == "orc" else meeteval.wer.cpwer
    rates = fn(meeteval.io.SegLST(ref), meeteval.io.SegLST(hyp))
    errors = sum(r.errors for r in rates.values())
    length = sum(r.length for r in rates.values())
    return {"errors": errors, "words": length, "rate": errors / max(1, length)}


def _timing(sessions: list[RefSession], decoded: list[Decoded]) -> dict[str, float]:
    starts, ends = [], []
    for s, d in zip(sessions, decoded, strict=True):
        for r in s.turns:
            best = max(d.turns, key=lambda h: min(h.end, r["end"]) - max(h.start, r["start"]), default=None)
            if best is not None and min(best.end, r["end"]) > max(best.start, r["start"]):
                starts.append(best.start - r["start"])
                ends.append(best.end - r["end"])
    out: dict[str, float] = {"matched_turns": len(starts)}
    for name, v in (("sot_delay", starts), ("eot_delay", ends)):
        if v:
            out[f"{name}_median"] = float(np.median(v))
            out[f"{name}_p90"] = float(np.percentile(v, 90))
    return out


def score(sessions: list[RefSession], decoded: list[Decoded]) -> dict[str, Any]:
    audio = sum(s.duration for s in sessions)
    ref_turns = sum(len(s.turns) for s in sessions)
    hyp_turns = sum(len(d.turns) for d in decoded)
    return {
        "sessions": len(sessions),
        "hours": audio / 3600,
        "orc_wer": _error_rate("orc", sessions, decoded),
        "cp_wer": _error_rate("cp", sessions, decoded),
        "turns": {"reference": ref_turns, "found": hyp_turns, "ratio": hyp_turns / max(1, ref_turns)},
        "timing": _timing(sessions, decoded),
        "rtf": sum(d.cpu_seconds for d in decoded) / max(audio, 1e-9),
    }


def evaluate(
    rec: Recognizer, specs: list[str], limit: int | None = None, batch: int = 16, voice_labels: bool = True
) -> dict[str, Any]:
    embedder = SpeakerEmbedder.from_pretrained() if voice_labels else None
    report: dict[str, Any] = {"model": rec.model_name, "labels": "voice" if voice_labels else "channel",
                              "blank_penalty": rec.config.streaming.blank_penalty, "sets": {}}  # fmt: skip
    for spec in specs:
        sessions = load_set(spec, limit)
        decoded = decode_sessions(rec, sessions, batch, embedder)
        entry = score(sessions, decoded)
        by_family: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(sessions):
            by_family[s.family].append(i)
        if len(by_family) > 1:
            entry["by_family"] = {
                fam: score([sessions[i] for i in idx], [decoded[i] for i in idx])
                for fam, idx in sorted(by_family.items())
            }
        report["sets"][spec] = entry
        print(f"{spec}: {summary_line(entry)}", file=sys.stderr)
    return report


def summary_line(e: dict[str, Any]) -> str:
    orc = e["orc_wer"].get("rate", float("nan"))
    cp = e["cp_wer"].get("rate", float("nan"))
    t = e["timing"]
    return (f"{e['sessions']} sessions, ORC-WER {100 * orc:.1f}%, cpWER {100 * cp:.1f}%, turns {e['turns']['found']}/"
            f"{e['turns']['reference']}, sot delay median {t.get('sot_delay_median', float('nan')):.2f}s, "
            f"eot delay median {t.get('eot_delay_median', float('nan')):.2f}s, RTF {e['rtf']:.3f}")  # fmt: skip


def markdown(report: dict[str, Any]) -> str:
    rows = ["| set | sessions | hours | WER / ORC-WER | cpWER | turns found / ref | sot delay med / p90 (s) "
            "| eot delay med / p90 (s) | RTF |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def row(name: str, e: dict[str, Any]) -> str:
        t = e["timing"]
        orc, cp = e["orc_wer"].get("rate"), e["cp_wer"].get("rate")
        return (f"| {name} | {e['sessions']} | {e['hours']:.2f} | {'-' if orc is None else f'{100 * orc:.1f}%'} | "
                f"{'-' if cp is None else f'{100 * cp:.1f}%'} | {e['turns']['found']} / {e['turns']['reference']} | "
                f"{t.get('sot_delay_median', float('nan')):.2f} / {t.get('sot_delay_p90', float('nan')):.2f} | "
                f"{t.get('eot_delay_median', float('nan')):.2f} / {t.get('eot_delay_p90', float('nan')):.2f} | "
                f"{e['rtf']:.3f} |")  # fmt: skip

    for name, e in report["sets"].items():
        rows.append(row(name, e))
        for fam, fe in e.get("by_family", {}).items():
            rows.append(row(f"{name} ({fam})", fe))
    head = f"Model `{report['model']}`, speaker labels by {report['labels']}"
    if report.get("blank_penalty"):
        head += f", blank penalty {report['blank_penalty']}"
    return head + "\n\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+", help="session-set folders, DIR or DIR:SUBSET")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the bundled model)")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    p.add_argument("--limit", type=int, default=None, help="at most this many sessions per set")
    p.add_argument("--batch", type=int, default=16, help="sessions decoded together")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--channel-labels", action="store_true", help="label speakers by channel, not by voice")
    p.add_argument("--blank-penalty", type=float, default=None, help="override the checkpoint's search setting")
    a = p.parse_args(argv)
    set_num_threads(a.threads)
    rec = Recognizer.from_pretrained(a.model)
    if a.blank_penalty is not None:
        rec = Recognizer(rec.model, replace(rec.config.streaming, blank_penalty=a.blank_penalty))
    report = evaluate(rec, a.sets, a.limit, a.batch, voice_labels=not a.channel_labels)
    md = markdown(report)
    publish(report, md, a.out)


if __name__ == "__main__":
    main()
