"""Meeting sessions: mixed audio plus reference turns, SegLST export and a session set on disk.

On disk a session set is a folder with ``<session_id>.flac`` (16 kHz mono), ``sessions.jsonl`` (one session a
line: ``session_id``, ``audio`` (file name), ``duration``, ``sample_rate``, ``turns``, ``meta``) and
``seglst.json`` (every turn of every session in meeteval's SegLST format, for ``meeteval-wer``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.data.audio import read_audio, write_flac
from model.data.voices import SAMPLE_RATE


@dataclass(frozen=True)
class Turn:
    """One reference turn: a speaker's continuous speech."""

    speaker: str  # meeting-wide speaker label, "S1", "S2", ...
    start: float  # seconds from the start of the session to the start of speech
    end: float  # seconds from the start of the session to the end of speech
    text: str  # normalised words (a-z, space, apostrophe)


@dataclass
class Session:
    """A mixture and its reference turns (sorted by start time)."""

    session_id: str
    audio: np.ndarray  # (num_samples,) float32 at sample_rate
    turns: list[Turn]
    sample_rate: int = SAMPLE_RATE
    meta: dict[str, Any] = field(default_factory=dict)  # simulator facts: voices, families, overlap, noise, ...

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.audio) / self.sample_rate

    @property
    def speakers(self) -> list[str]:
        """Speaker labels in order of first turn."""
        return list(dict.fromkeys(t.speaker for t in self.turns))


def to_seglst(session: Session) -> list[dict[str, Any]]:
    """The turns as SegLST segments (meeteval: session_id, speaker, start_time, end_time, words)."""
    return [
        {
            "session_id": session.session_id,
            "speaker": t.speaker,
            "start_time": round(t.start, 4),
            "end_time": round(t.end, 4),
            "words": t.text,
        }
        for t in session.turns
    ]


def write_sessions(directory: str | Path, sessions: Iterable[Session]) -> list[Path]:
    """Write a session set (see module docstring); returns the audio paths. Replaces an existing set."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    seglst: list[dict[str, Any]] = []
    with open(directory / "sessions.jsonl", "w", encoding="utf-8") as f:
        for s in sessions:
            assert s.sample_rate == SAMPLE_RATE, s.sample_rate
            path = directory / f"{s.session_id}.flac"
            write_flac(path, s.audio)
            paths.append(path)
            record = {
                "session_id": s.session_id,
                "audio": path.name,
                "duration": round(s.duration, 4),
                "sample_rate": s.sample_rate,
                "turns": [asdict(t) for t in s.turns],
                "meta": s.meta,
            }
            f.write(json.dumps(record) + "\n")
            seglst += to_seglst(s)
    (directory / "seglst.json").write_text(json.dumps(seglst, indent=1), encoding="utf-8")
    return paths


def read_session_records(directory: str | Path) -> list[dict[str, Any]]:
    """The lines of ``sessions.jsonl`` (no audio loaded)."""
    path = Path(directory) / "sessions.jsonl"
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _session(directory: Path, r: dict[str, Any]) -> Session:
    return Session(
        session_id=r["session_id"],
        audio=read_audio(directory / r["audio"]),
        turns=[Turn(**t) for t in r["turns"]],
        sample_rate=SAMPLE_RATE,  # read_audio resamples
        meta=r.get("meta", {}),
    )


def read_sessions(directory: str | Path) -> Iterator[Session]:
    """The sessions of a set written by :func:`write_sessions`, audio included (16 kHz)."""
    directory = Path(directory)
    for r in read_session_records(directory):
        yield _session(directory, r)


@dataclass
class EvalSession:
    """A session of an evaluation set, with what the scoring needs to know of it."""

    session: Session
    family: str  # voice family of every speaker, "mixed", or "real" (no families in its meta)
    score_words: bool  # False where the reference has no transcript (``"wer": false`` in its record)


def family_of(session: Session) -> str:
    """The voice family of every speaker of a simulated session, "mixed" if several, "real" if none known."""
    fams = set(session.meta.get("families", {}).values())
    return fams.pop() if len(fams) == 1 else ("mixed" if fams else "real")


def read_eval_set(spec: str, limit: int | None = None) -> list[EvalSession]:
    """The sessions of an evaluation set ``DIR`` or ``DIR:SUBSET`` (the records whose ``subset`` is SUBSET),
    at most ``limit``; as written by ``model.data.devset`` and ``model.data.realspeech``."""
    directory, _, subset = spec.partition(":")
    out: list[EvalSession] = []
    for r in read_session_records(directory):
        if subset and r.get("subset") != subset:
            continue
        s = _session(Path(directory), r)
        out.append(EvalSession(s, family_of(s), bool(r.get("wer", True))))
        if limit and len(out) >= limit:
            break
    return out


def speech_intervals(turns: Iterable[Turn]) -> list[tuple[float, float]]:
    """(start, end) of every turn."""
    return [(t.start, t.end) for t in turns]


def activity_stats(intervals: Iterable[tuple[float, float]]) -> tuple[float, float, int]:
    """(speech seconds: at least one active, overlap seconds: two or more active, most active at once)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    speech = overlap = 0.0
    active = peak = 0
    prev = 0.0
    for t, delta in events:
        if active >= 1:
            speech += t - prev
        if active >= 2:
            overlap += t - prev
        active += delta
        peak = max(peak, active)
        prev = t
    return speech, overlap, peak


def overlap_ratio(turns: Iterable[Turn]) -> float:
    """Share of speech time in which two or more speakers talk."""
    speech, overlap, _ = activity_stats(speech_intervals(turns))
    return overlap / speech if speech > 0 else 0.0
