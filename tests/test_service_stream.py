"""WebSocket streaming against a real server: same turns as REST, partials, finalize, encodings, timeouts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
import soxr
from websockets.asyncio.client import connect

from tests.lively import SR
from tests.service_client import final_turns, post_audio, read_until_closed, stream_audio, to_bytes

pytest_plugins = ["tests.service_fixtures"]


def _partials(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "partial"]


def test_stream_gives_the_same_turns_as_rest(server: Any, meeting_audio: Any, meeting_wav: Any) -> None:
    samples, bursts = meeting_audio
    messages, code = asyncio.run(stream_audio(server.ws, samples, frame_seconds=0.02, speed=20, relabel=True))
    assert code == 1000
    assert messages[0]["type"] == "ready" and messages[0]["model"] == "sts-tiny-lively"
    assert messages[-1]["type"] == "end"
    # a relabel, if a revision changed any label, names only turns already sent
    for i, m in enumerate(messages):
        if m["type"] == "relabel":
            sent = {x["turn_id"] for x in messages[:i] if x["type"] == "turn"}
            assert {r["turn_id"] for r in m["turns"]} <= sent
    streamed = final_turns(messages)  # relabels applied: the same as REST
    assert messages[-1]["turns"] == len(streamed)
    assert messages[-1]["duration"] == pytest.approx(len(samples) / SR, abs=1e-3)

    status, ctype, body = post_audio(server.http, meeting_wav.read_bytes())
    assert status == 200, body
    assert ctype.startswith("application/json")
    rest = json.loads(body)
    # not vacuous: the bursts of the audio became turns with words, on both channels
    assert len(rest["turns"]) >= len(bursts)
    assert {t["channel"] for t in rest["turns"]} == {0, 1}
    assert all(t["words"] and t["text"] for t in rest["turns"])
    assert rest["speakers"] == ["S1", "S2"]
    assert streamed == rest["turns"]
    # each burst is covered by a turn that starts near it
    for a, _ in bursts:
        assert any(abs(t["start"] - a) < 0.3 for t in rest["turns"]), a


def test_partials_grow_and_precede_their_turn(server: Any, meeting_audio: Any) -> None:
    messages, _ = asyncio.run(stream_audio(server.ws, meeting_audio[0], speed=30))
    assert not any(m["type"] == "relabel" for m in messages)  # only a client that asks gets relabels
    partials = _partials(messages)
    assert partials, "a multi-word turn should produce partials"
    finals = {m["turn_id"]: i for i, m in enumerate(messages) if m["type"] == "turn"}
    last_text: dict[str, str] = {}
    for i, p in enumerate(messages):
        if p["type"] != "partial":
            continue
        assert p["turn_id"] in finals and i < finals[p["turn_id"]]  # a partial never follows its final
        prev = last_text.get(p["turn_id"], "")
        assert p["text"] != prev and p["text"].startswith(prev)  # no repeats, no flicker
        last_text[p["turn_id"]] = p["text"]
    no_interim, _ = asyncio.run(stream_audio(server.ws, meeting_audio[0], speed=30, interim=False))
    assert not _partials(no_interim)
    assert final_turns(no_interim) == final_turns(messages)


def test_f32_at_another_rate(server: Any, meeting_audio: Any) -> None:
    samples = soxr.resample(meeting_audio[0], SR, 44100).astype(np.float32)
    messages, code = asyncio.run(stream_audio(server.ws, samples, 44100, "pcm_f32le", speed=30))
    assert code == 1000 and messages[0]["sample_rate"] == 44100
    assert len(final_turns(messages)) >= 4
    assert messages[-1]["duration"] == pytest.approx(12.0, abs=0.01)


def test_finalize_closes_open_turns_without_stop(server: Any, meeting_audio: Any) -> None:
    samples, bursts = meeting_audio
    a, b = bursts[1]
    cut = int((a + b) / 2 * SR)  # in the middle of the second burst: a turn is open

    async def run() -> list[dict[str, Any]]:
        async with connect(server.ws) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": SR}))
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(to_bytes(samples[:cut]))
            await ws.send(json.dumps({"type": "finalize"}))
            got: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while not any(m["type"] == "turn" and m["start"] > a - 0.3 for m in got):
                    got.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"type": "stop"}))
            rest, code = await read_until_closed(ws)
            assert code == 1000
            return got + rest

    messages = asyncio.run(run())
    turns = final_turns(messages)
    second = [t for t in turns if abs(t["start"] - a) < 0.3]
    assert second and all(t["end"] <= cut / SR + 0.05 for t in second)
    assert messages[-1]["type"] == "end"


def test_keepalive_then_idle_timeout(make_server: Any) -> None:
    srv = make_server(idle_timeout=1.0)

    async def run() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(srv.ws) as ws:
            await ws.send(json.dumps({"type": "start"}))
            for _ in range(4):  # 1.6 s of keepalives keep it open
                await asyncio.sleep(0.4)
                await ws.send(json.dumps({"type": "keepalive"}))
            return await read_until_closed(ws, timeout=5)

    messages, code = asyncio.run(run())
    assert [m["type"] for m in messages] == ["ready", "error"]
    assert messages[-1]["code"] == "idle_timeout" and code == 1008


def test_idle_timeout_sends_the_open_turn_final_before_the_error(make_server: Any, meeting_audio: Any) -> None:
    srv = make_server(idle_timeout=1.5)
    samples, bursts = meeting_audio
    a, b = bursts[1]
    cut = int((a + b) / 2 * SR)  # the audio stops in the middle of the second burst: its turn is open

    async def run() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(srv.ws) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": SR}))
            await ws.send(to_bytes(samples[:cut]))
            return await read_until_closed(ws, timeout=10)  # then silence: no stop, no keepalive

    messages, code = asyncio.run(run())
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == "idle_timeout" and code == 1008
    second = [t for t in final_turns(messages) if abs(t["start"] - a) < 0.3]
    assert second and all(t["end"] <= cut / SR + 0.05 for t in second)


def test_frames_of_any_length_give_the_same_turns(server: Any, meeting_audio: Any) -> None:
    """DESIGN section 5: binary frames of any length; a sample split between two frames is joined."""
    samples, _ = meeting_audio
    reference, _ = asyncio.run(stream_audio(server.ws, samples, speed=40))

    async def run(encoding: str) -> tuple[list[dict[str, Any]], int | None]:
        data = to_bytes(samples, encoding)
        sizes = np.random.RandomState(1).randint(1, 1500, size=len(data) // 700)
        async with connect(server.ws) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": SR, "encoding": encoding}))
            reader = asyncio.create_task(read_until_closed(ws, timeout=60))
            pos = 0
            for n in sizes:  # odd lengths included: most frames end inside a sample
                if pos >= len(data):
                    break
                await ws.send(data[pos : pos + int(n)])
                pos += int(n)
                await asyncio.sleep(0.001)
            if pos < len(data):
                await ws.send(data[pos:])
            await ws.send(json.dumps({"type": "stop"}))
            return await reader

    for encoding in ("pcm_s16le", "pcm_f32le"):
        messages, code = asyncio.run(run(encoding))
        assert code == 1000 and messages[-1]["type"] == "end", encoding
        assert messages[-1]["duration"] == pytest.approx(12.0, abs=0.01)
        assert final_turns(messages) == final_turns(reference), encoding


def test_max_session_length_sends_open_turns_then_error(make_server: Any, meeting_audio: Any) -> None:
    srv = make_server(max_session_seconds=1.5)
    samples, _ = meeting_audio

    async def run() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(srv.ws) as ws:
            await ws.send(json.dumps({"type": "start"}))
            await ws.send(to_bytes(samples[: 3 * SR]))
            return await read_until_closed(ws, timeout=10)

    messages, code = asyncio.run(run())
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == "session_too_long" and code == 1008
    assert final_turns(messages)
