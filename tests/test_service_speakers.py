"""Speaker labels in the service: by voice (default) or by channel, the max_speakers hint, the overlap rule."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from tests.service_client import final_turns, post_audio, stream_audio

pytest_plugins = ["tests.service_fixtures"]


def turns_of(server: Any, wav: Path, query: str = "") -> list[dict[str, Any]]:
    status, _, body = post_audio(server.http, wav.read_bytes(), query)
    assert status == 200, body
    turns = json.loads(body)["turns"]
    assert len(turns) > 4, "the test audio must give several turns"
    return turns


def test_channel_labels_when_configured(make_server: Any, meeting_wav: Path) -> None:
    server = make_server(speaker_labels="channel")
    for t in turns_of(server, meeting_wav):
        assert t["speaker"] == f"S{t['channel'] + 1}"


def test_voice_labels_respect_hint_and_overlap(server: Any, meeting_wav: Path) -> None:
    turns = turns_of(server, meeting_wav, "?max_speakers=2")
    labels = {t["speaker"] for t in turns}
    assert all(re.fullmatch(r"S\d+", s) for s in labels), labels
    assert len(labels) <= 2, labels
    for a in turns:
        for b in turns:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["speaker"] != b["speaker"], (a, b)


def test_bad_hint_is_rejected(server: Any, meeting_wav: Path) -> None:
    status, _, body = post_audio(server.http, meeting_wav.read_bytes(), "?max_speakers=0")
    assert status == 422, body


def test_relabel_reaches_a_websocket_client_that_asks_and_rest_applies_it(
    make_server: Any, meeting_audio: Any, meeting_wav: Path, relabel_t1: None
) -> None:
    server = make_server()
    messages, code = asyncio.run(stream_audio(server.ws, meeting_audio[0], speed=30, relabel=True))
    assert code == 1000 and [m["type"] for m in messages[-2:]] == ["relabel", "end"]
    assert messages[-2]["turns"] == [{"turn_id": "t1", "speaker": "S9"}]
    t1 = next(m for m in messages if m["type"] == "turn" and m["turn_id"] == "t1")
    assert t1["speaker"] != "S9"  # as sent live
    rest = turns_of(server, meeting_wav)
    assert next(t for t in rest if t["turn_id"] == "t1")["speaker"] == "S9"
    assert final_turns(messages) == rest
    plain, _ = asyncio.run(stream_audio(server.ws, meeting_audio[0], speed=30))
    assert "relabel" not in {m["type"] for m in plain}  # v1 clients that do not ask never see one


def test_a_revision_during_the_stream_reaches_the_client_at_once(
    make_server: Any, meeting_audio: Any, meeting_wav: Path, relabel_t1_early: None
) -> None:
    """v1.2: a relabel may come any time after the turns it names; the last change of a turn's label counts."""
    server = make_server()
    messages, code = asyncio.run(stream_audio(server.ws, meeting_audio[0], speed=30, relabel=True))
    assert code == 1000
    relabels = [(i, m["turns"]) for i, m in enumerate(messages) if m["type"] == "relabel"]
    t1 = next(i for i, m in enumerate(messages) if m["type"] == "turn" and m["turn_id"] == "t1")
    assert [r for _, r in relabels] == [[{"turn_id": "t1", "speaker": "S8"}], [{"turn_id": "t1", "speaker": "S9"}]]
    assert t1 < relabels[0][0] < relabels[1][0] == len(messages) - 2  # the first after t1, the last before end
    rest = turns_of(server, meeting_wav)
    assert final_turns(messages) == rest
    assert next(t for t in rest if t["turn_id"] == "t1")["speaker"] == "S9"
