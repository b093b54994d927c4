"""Transcript JSON and its exports (SegLST, RTTM, STM, SRT, WebVTT, text)."""

from __future__ import annotations

import json

import pytest

from service.formats import FILE_EXTENSIONS, MEDIA_TYPES, build_transcript, render, to_seglst
from service.schemas import OUTPUT_FORMATS, Transcript, Turn, Word


def _turn(tid: str, channel: int, start: float, end: float, text: str) -> Turn:
    words = text.split()
    step = (end - start) / max(1, len(words))
    return Turn(
        turn_id=tid, channel=channel, speaker=f"S{channel + 1}", start=start, end=end, text=text, confidence=0.9,
        words=[Word(word=w, start=start + i * step, end=start + (i + 1) * step, confidence=0.9)
               for i, w in enumerate(words)],
    )  # fmt: skip


@pytest.fixture
def transcript() -> Transcript:
    turns = [_turn("t2", 1, 3.12, 5.8, "sounds good to me"), _turn("t1", 0, 0.5, 3601.25, "hello <there> & all")]
    return build_transcript(turns, duration=3700.0, model="sts-test")


def test_build_orders_turns_and_lists_speakers(transcript: Transcript) -> None:
    assert [t.turn_id for t in transcript.turns] == ["t1", "t2"]
    assert transcript.speakers == ["S1", "S2"]
    labels = build_transcript([_turn("t1", 0, 0, 1, "a").model_copy(update={"speaker": s})
                               for s in ("S10", "S2", "S1")], 1.0, "m").speakers  # fmt: skip
    assert labels == ["S1", "S2", "S10"]


def test_json_round_trips_with_the_section_4_fields(transcript: Transcript) -> None:
    data = json.loads(render(transcript, "json"))
    assert set(data) == {"duration", "model", "speakers", "turns"}
    assert set(data["turns"][0]) == {"turn_id", "channel", "speaker", "start", "end", "text", "confidence", "words"}
    assert set(data["turns"][0]["words"][0]) == {"word", "start", "end", "confidence"}
    assert Transcript.model_validate(data) == transcript


def test_seglst(transcript: Transcript) -> None:
    segs = json.loads(render(transcript, "seglst", name="meet1"))
    assert segs == to_seglst(transcript, "meet1")
    assert segs[1] == {"session_id": "meet1", "speaker": "S2", "start_time": 3.12, "end_time": 5.8,
                       "words": "sounds good to me"}  # fmt: skip


def test_rttm_and_stm(transcript: Transcript) -> None:
    rttm = render(transcript, "rttm", name="my file").splitlines()
    assert rttm[1] == "SPEAKER my_file 1 3.120 2.680 <NA> <NA> S2 <NA> <NA>"
    assert all(len(line.split()) == 10 for line in rttm)
    stm = render(transcript, "stm", name="f").splitlines()
    assert stm[1] == "f 1 S2 3.120 5.800 sounds good to me"


def test_srt_and_vtt(transcript: Transcript) -> None:
    srt = render(transcript, "srt")
    assert srt.startswith("1\n00:00:00,500 --> 01:00:01,250\nS1: hello <there> & all\n\n2\n00:00:03,120 --> ")
    vtt = render(transcript, "vtt")
    assert vtt.startswith("WEBVTT\n\nt1\n00:00:00.500 --> 01:00:01.250\n<v S1>hello &lt;there&gt; &amp; all\n")
    assert "\nt2\n00:00:03.120 --> 00:00:05.800\n<v S2>sounds good to me\n" in vtt


def test_txt_and_every_format_has_a_media_type(transcript: Transcript) -> None:
    assert render(transcript, "txt") == "S1: hello <there> & all\nS2: sounds good to me\n"
    for fmt in OUTPUT_FORMATS:
        assert fmt in MEDIA_TYPES and fmt in FILE_EXTENSIONS
        render(transcript, fmt)
    with pytest.raises(ValueError, match="unknown format"):
        render(transcript, "docx")


def test_empty_transcript() -> None:
    empty = build_transcript([], 0.0, "m")
    assert (
        render(empty, "txt") == ""
        and render(empty, "vtt") == "WEBVTT\n\n"
        and json.loads(render(empty, "seglst")) == []
    )
