"""The transcript JSON (DESIGN section 4) and its exports: SegLST, RTTM, STM, SRT, WebVTT, plain text.

Pure functions on ``schemas.Transcript``; the service, the command line and the client SDK share them:

    transcript = build_transcript(turns, duration=12.48, model="sts-...")
    text = render(transcript, "srt")
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from service.schemas import OUTPUT_FORMATS, Transcript, Turn

MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "seglst": "application/json",
    "rttm": "text/plain; charset=utf-8",
    "stm": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}
FILE_EXTENSIONS: dict[str, str] = {
    "json": ".json", "seglst": ".seglst.json", "rttm": ".rttm", "stm": ".stm",
    "srt": ".srt", "vtt": ".vtt", "txt": ".txt",
}  # fmt: skip


def build_transcript(turns: Iterable[Turn], duration: float, model: str) -> Transcript:
    """A transcript of final turns, ordered by start time (then channel, then turn_id)."""
    ordered = sorted(turns, key=lambda t: (t.start, t.channel, _id_number(t.turn_id)))
    speakers = sorted({t.speaker for t in ordered}, key=_label_key)
    return Transcript(duration=round(duration, 3), model=model, speakers=speakers, turns=ordered)


def relabelled(turns: Iterable[Turn], changes: Mapping[str, str]) -> list[Turn]:
    """``turns`` with the speaker labels of a relabel (turn_id -> new label) applied."""
    return [t.model_copy(update={"speaker": changes[t.turn_id]}) if t.turn_id in changes else t for t in turns]


def _id_number(turn_id: str) -> int:
    digits = turn_id.lstrip("t")
    return int(digits) if digits.isdigit() else 0


def _label_key(label: str) -> tuple[int, str]:
    """Natural order: S2 before S10."""
    digits = label.lstrip("S")
    return (int(digits), label) if digits.isdigit() else (1 << 30, label)


def to_json(t: Transcript) -> str:
    return t.model_dump_json()


def to_seglst(t: Transcript, session_id: str = "session") -> list[dict[str, Any]]:
    """meeteval's SegLST: one segment per turn (session_id, speaker, start_time, end_time, words)."""
    return [
        {"session_id": session_id, "speaker": u.speaker, "start_time": u.start, "end_time": u.end,
         "words": u.text}
        for u in t.turns
    ]  # fmt: skip


def to_rttm(t: Transcript, file_id: str = "audio") -> str:
    """NIST RTTM speaker segments: ``SPEAKER file 1 start duration <NA> <NA> speaker <NA> <NA>``."""
    return "".join(
        f"SPEAKER {_token(file_id)} 1 {u.start:.3f} {max(0.0, u.end - u.start):.3f} <NA> <NA> "
        f"{_token(u.speaker)} <NA> <NA>\n"
        for u in t.turns
    )


def to_stm(t: Transcript, file_id: str = "audio") -> str:
    """NIST STM: ``file channel speaker start end transcript``, sorted by start (as sclite wants)."""
    return "".join(f"{_token(file_id)} 1 {_token(u.speaker)} {u.start:.3f} {u.end:.3f} {u.text}\n" for u in t.turns)


def to_srt(t: Transcript) -> str:
    """SubRip subtitles, one cue per turn, text prefixed with the speaker label."""
    cues = [
        f"{i}\n{_clock(u.start, ',')} --> {_clock(max(u.end, u.start), ',')}\n{u.speaker}: {u.text}\n"
        for i, u in enumerate(t.turns, start=1)
    ]
    return "\n".join(cues)


def to_vtt(t: Transcript) -> str:
    """WebVTT, one cue per turn with a voice span naming the speaker."""
    cues = [
        f"{u.turn_id}\n{_clock(u.start, '.')} --> {_clock(max(u.end, u.start), '.')}\n"
        f"<v {_vtt_escape(u.speaker)}>{_vtt_escape(u.text)}\n"
        for u in t.turns
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def to_txt(t: Transcript) -> str:
    """Plain text: one ``speaker: text`` line per turn."""
    return "".join(f"{u.speaker}: {u.text}\n" for u in t.turns)


def render(t: Transcript, fmt: str, name: str = "audio") -> str:
    """The transcript in one of ``OUTPUT_FORMATS``; ``name`` is the session / file id where a format has
    one (SegLST, RTTM, STM)."""
    if fmt == "json":
        return to_json(t)
    if fmt == "seglst":
        return json.dumps(to_seglst(t, name))
    if fmt == "rttm":
        return to_rttm(t, name)
    if fmt == "stm":
        return to_stm(t, name)
    if fmt == "srt":
        return to_srt(t)
    if fmt == "vtt":
        return to_vtt(t)
    if fmt == "txt":
        return to_txt(t)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(OUTPUT_FORMATS)}")


def _clock(seconds: float, sep: str) -> str:
    """``HH:MM:SS<sep>mmm``."""
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _token(s: str) -> str:
    """A whitespace-free field for the NIST formats."""
    return "_".join(s.split()) or "unknown"


def _vtt_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
