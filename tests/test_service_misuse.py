"""Every WebSocket misuse gets an error and a fitting close code, while another client's stream carries on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.lively import SR
from tests.service_client import (
    RawWebSocket,
    final_turns,
    metric,
    read_until_closed,
    stream_audio,
    to_bytes,
    wait_until_no_streams,
)

pytest_plugins = ["tests.service_fixtures"]

START = json.dumps({"type": "start", "sample_rate": SR})
START_F32 = json.dumps({"type": "start", "sample_rate": SR, "encoding": "pcm_f32le"})
MISUSES: list[tuple[str, list[str | bytes], str, int]] = [
    ("audio before start", [b"\x00\x00" * 160], "audio_before_start", 1008),
    ("bad JSON", ["{not json"], "bad_json", 1007),
    ("JSON that is not an object", ["[1, 2]"], "invalid_message", 1008),
    ("unknown type", ['{"type": "hello"}'], "unknown_type", 1008),
    ("wrong encoding", ['{"type": "start", "encoding": "mp3"}'], "unsupported_encoding", 1003),
    ("sample rate too low", ['{"type": "start", "sample_rate": 4000}'], "bad_sample_rate", 1003),
    ("sample rate too high", ['{"type": "start", "sample_rate": 96000}'], "bad_sample_rate", 1003),
    ("sample rate not a number", ['{"type": "start", "sample_rate": "fast"}'], "bad_sample_rate", 1003),
    ("deeply nested JSON", ["[" * 100_000], "bad_json", 1007),
    ("NaN samples", [START_F32, np.full(160, np.nan, "<f4").tobytes()], "bad_audio", 1007),
    ("f32 samples on the 16-bit scale", [START_F32, np.full(160, 3000.0, "<f4").tobytes()], "bad_audio", 1007),
    ("frame too large", [START, b"\x00" * (300 << 10)], "frame_too_large", 1009),
    ("start twice", [START, START], "already_started", 1008),
    ("stop before start", ['{"type": "stop"}'], "not_started", 1008),
    ("finalize before start", ['{"type": "finalize"}'], "not_started", 1008),
]


async def _misuse(url: str, actions: list[str | bytes]) -> tuple[list[dict[str, Any]], int | None]:
    async with connect(url) as ws:
        with contextlib.suppress(ConnectionClosed):  # the server may close before every action is sent
            for a in actions:
                await ws.send(a)
        return await read_until_closed(ws, timeout=10)


def test_every_misuse_gets_its_error_while_another_stream_carries_on(server: Any, meeting_audio: Any) -> None:
    samples, _ = meeting_audio
    reference, _ = asyncio.run(stream_audio(server.ws, samples, speed=40))

    async def run() -> tuple[Any, list[Any]]:
        healthy = asyncio.create_task(stream_audio(server.ws, samples, speed=6))
        results = []
        for _, actions, _, _ in MISUSES:
            results.append(await _misuse(server.ws, actions))
        return await healthy, results

    (messages, code), results = asyncio.run(run())
    for (name, _, want_code, want_close), (got, close) in zip(MISUSES, results, strict=True):
        errors = [m for m in got if m["type"] == "error"]
        assert len(errors) == 1 and errors[0]["code"] == want_code, (name, got)
        assert got[-1]["type"] == "error" and errors[0]["message"], name
        assert close == want_close, (name, close)
    assert code == 1000 and messages[-1]["type"] == "end"
    assert final_turns(messages) == final_turns(reference)


def test_vanishing_client_frees_its_stream(server: Any, meeting_audio: Any) -> None:
    samples, _ = meeting_audio
    active = 'sts_active_streams{transport="ws"}'

    async def vanish() -> None:
        async with connect(server.ws) as ws:
            await ws.send(START)
            await ws.recv()
            await ws.send(to_bytes(samples[: 2 * SR]))
            await asyncio.sleep(0.2)
            assert metric(server.http, active) >= 1
            ws.transport.abort()  # no close frame: the client just disappears

    asyncio.run(vanish())
    wait_until_no_streams(server.http)
    messages, code = asyncio.run(stream_audio(server.ws, samples[: 4 * SR], speed=40))
    assert code == 1000 and messages[-1]["type"] == "end"


@pytest.mark.slow
def test_client_that_never_reads_is_dropped_not_the_server(make_server: Any, meeting_audio: Any) -> None:
    srv = make_server(sndbuf=8192, send_timeout=1.0, send_queue_size=8)
    samples, _ = meeting_audio
    loud = np.tile(samples, 24)  # 288 s of audio: about 170 kB of partials and turns, never read
    stuck = RawWebSocket("127.0.0.1", srv.port)

    def flood() -> None:
        stuck.send(START)
        with contextlib.suppress(OSError):  # the server stops reading, then drops us
            for i in range(0, len(loud), SR):
                stuck.send(to_bytes(loud[i : i + SR]), timeout=10)

    async def run() -> tuple[Any, bool]:
        flooding = asyncio.create_task(asyncio.to_thread(flood))
        healthy = await stream_audio(srv.ws, samples, speed=10)
        dropped = False
        deadline = time.monotonic() + 60  # decoding 288 s of audio takes a while on a loaded machine
        while time.monotonic() < deadline and not dropped:
            dropped = metric(srv.http, 'sts_errors_total{code="slow_consumer"}') >= 1
            await asyncio.sleep(0.2)
        stuck.abort()
        await flooding
        return healthy, dropped

    (messages, code), dropped = asyncio.run(run())
    assert dropped, "the server should give up on a client that never reads"
    assert code == 1000 and final_turns(messages)
    wait_until_no_streams(srv.http)


def test_capacity_refuses_websocket_1013_and_rest_503(make_server: Any, meeting_wav: Any) -> None:
    from tests.service_client import post_audio

    srv = make_server(max_streams=2)

    async def run() -> tuple[Any, tuple[int, str, bytes]]:
        async with connect(srv.ws) as a, connect(srv.ws) as b:
            for ws in (a, b):
                await ws.send(START)
                assert json.loads(await ws.recv())["type"] == "ready"
            refused = await _misuse(srv.ws, [START])
            rest = await asyncio.to_thread(post_audio, srv.http, meeting_wav.read_bytes())
            return refused, rest

    (got, close), (status, _, body) = asyncio.run(run())
    assert got[-1]["type"] == "error" and got[-1]["code"] == "capacity" and close == 1013
    assert status == 503 and json.loads(body)["error"]["code"] == "capacity"
    wait_until_no_streams(srv.http)  # the clients have closed; the server frees their slots as it sees them go
    messages, code = asyncio.run(stream_audio(srv.ws, np.zeros(SR, np.float32), speed=40))  # slots freed
    assert code == 1000 and messages[-1]["type"] == "end"
