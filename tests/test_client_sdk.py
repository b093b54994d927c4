"""The Python SDK (clients/sdk.py) against a real uvicorn server on loopback with the lively random model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from clients.sdk import (
    ApiRequestError,
    BatchClient,
    StreamError,
    StreamingClient,
    SyncStreamingClient,
    TranscriptBuilder,
    astream_transcribe,
    encode_audio,
    http_url,
    stream_samples,
    stream_transcribe,
    stream_url,
)
from service.formats import render
from service.schemas import EndMessage, PartialMessage, Relabel, RelabelMessage, Transcript, TurnMessage
from tests.lively import SR

pytest_plugins = ["tests.service_fixtures"]


@pytest.fixture(scope="module")
def rest_transcript(server: Any, meeting_wav: Path) -> Transcript:
    t = BatchClient(server.http).transcribe(meeting_wav)
    # not vacuous: the bursts became several turns with words on both channels
    assert len(t.turns) >= 8 and {u.channel for u in t.turns} == {0, 1}
    assert all(u.words and u.text for u in t.turns)
    return t


@pytest.fixture(scope="module")
def wav_samples(meeting_wav: Path) -> np.ndarray:
    """The samples of the WAV file that REST reads (16-bit), so that streams send exactly the same audio."""
    samples, rate = sf.read(meeting_wav, dtype="float32")
    assert rate == SR
    return samples


def test_urls() -> None:
    assert stream_url("http://h:1") == "ws://h:1/v1/stream"
    assert stream_url("https://h/") == "wss://h/v1/stream"
    assert stream_url("ws://h:1/v1/stream?token=k") == "ws://h:1/v1/stream?token=k"
    assert stream_url("h:8000") == "ws://h:8000/v1/stream"
    assert http_url("ws://h:1/v1/stream") == "http://h:1"
    assert http_url("https://h/api/") == "https://h/api"
    with pytest.raises(ValueError):
        stream_url("ftp://h")


def test_encode_audio() -> None:
    x = np.array([0.0, 0.5, -1.0, 1.0], dtype=np.float32)
    assert np.frombuffer(encode_audio(x, "pcm_s16le"), "<i2").tolist() == [0, 16384, -32768, 32767]
    assert np.array_equal(np.frombuffer(encode_audio(x, "pcm_f32le"), "<f4"), x)
    i = np.array([1, -2], dtype=np.int16)
    assert encode_audio(i, "pcm_s16le") == i.astype("<i2").tobytes()
    assert np.allclose(np.frombuffer(encode_audio(i, "pcm_f32le"), "<f4"), i / 32768)
    assert encode_audio(b"\x01\x02", "pcm_s16le") == b"\x01\x02"
    with pytest.raises(ValueError):
        encode_audio(np.zeros((2, 3), np.float32), "pcm_s16le")
    with pytest.raises(ValueError):
        encode_audio(np.zeros(3, np.int64), "pcm_s16le")


def test_async_stream_equals_rest(server: Any, wav_samples: np.ndarray, rest_transcript: Transcript) -> None:
    samples = wav_samples

    async def go() -> tuple[list[Any], Transcript, Any]:
        events: list[Any] = []
        async with StreamingClient(server.ws, sample_rate=SR) as c:
            assert c.ready is not None and c.ready.model == "sts-tiny-lively" and c.session_id
            sender = asyncio.create_task(stream_samples(c, samples, frame_seconds=0.05, realtime=20.0))
            async for event in c.events():
                events.append(event)
            await sender
            return events, c.transcript(), c.close_code

    events, transcript, code = asyncio.run(go())
    assert code == 1000
    assert isinstance(events[-1], EndMessage) and events[-1].turns == len(transcript.turns)
    assert transcript.duration == pytest.approx(len(samples) / SR, abs=1e-3)
    assert transcript == rest_transcript
    partials = [e for e in events if isinstance(e, PartialMessage)]
    finals = {e.turn_id: e for e in events if isinstance(e, TurnMessage)}
    assert partials, "interim results were asked for"
    for p in partials:  # the final that replaces a partial extends it, less cross-channel copies (service/turns.py)
        final = finals[p.turn_id]
        later, dropped = final.text.split(), []
        for word in p.text.split():
            if later and later[0] == word:
                later.pop(0)
            else:
                dropped.append(word)
        twins = {w for t in finals.values() if t.channel != final.channel for w in t.text.split()}
        assert set(dropped) <= twins, (p.text, final.text)  # a dropped word lives on in the other channel's turns


def test_send_everything_first_then_read(server: Any, wav_samples: np.ndarray, rest_transcript: Transcript) -> None:
    """The background reader keeps the server from seeing a slow consumer."""
    samples = wav_samples

    async def go() -> Transcript:
        async with StreamingClient(server.ws, sample_rate=SR, encoding="pcm_f32le", interim_results=False) as c:
            for i in range(0, len(samples), 1600):
                await c.send_audio(samples[i : i + 1600])
            await c.stop()
            return await c.wait_closed(timeout=60)

    assert asyncio.run(go()).turns == rest_transcript.turns


def test_sync_client(server: Any, wav_samples: np.ndarray, rest_transcript: Transcript) -> None:
    samples = wav_samples
    pcm = (np.clip(samples, -1, 32767 / 32768) * 32768).astype(np.int16)
    with SyncStreamingClient(server.ws, sample_rate=SR) as c:
        assert c.ready is not None
        for i in range(0, len(pcm), 3200):
            c.send_audio(pcm[i : i + 3200])
        c.keepalive()
        c.stop()
        kinds = [type(e).__name__ for e in c.events(timeout=60)]
        assert kinds[-1] == "EndMessage" and "TurnMessage" in kinds
        assert c.transcript().turns == rest_transcript.turns
    assert c.close_code == 1000
    # the one-call helper
    assert stream_transcribe(server.ws, samples, SR).turns == rest_transcript.turns


def test_finalize_closes_open_turns(server: Any, wav_samples: np.ndarray) -> None:
    samples = wav_samples

    async def go() -> tuple[int, int]:
        async with StreamingClient(server.ws, sample_rate=SR, interim_results=False) as c:
            await c.send_audio(samples[: 5 * SR])
            await c.finalize()
            got = 0
            async with asyncio.timeout(30):
                async for e in c.events():
                    if isinstance(e, TurnMessage):
                        got += 1
                        if e.end >= 4.5:  # the turn open at 5 s was closed by finalize
                            break
            await c.stop()
            await c.wait_closed(timeout=30)
            return got, len(c.transcript().turns)

    got, total = asyncio.run(go())
    assert 0 < got <= total


def test_auth(make_server: Any, wav_samples: np.ndarray, meeting_wav: Path) -> None:
    srv = make_server(api_keys="k1,k2")
    samples = wav_samples
    with pytest.raises(StreamError) as refused:
        stream_transcribe(srv.ws, samples[:SR], SR)
    assert refused.value.code == "unauthorized" and refused.value.close_code == 1008
    t = asyncio.run(astream_transcribe(srv.ws, samples[: 3 * SR], SR, token="k2"))
    assert t.duration == pytest.approx(3.0)
    with pytest.raises(ApiRequestError) as denied:
        BatchClient(srv.http, token="nope").transcribe(meeting_wav)
    assert denied.value.status == 401 and denied.value.code == "unauthorized"
    assert BatchClient(srv.http, token="k1").models().models[0].id == "sts-tiny-lively"
    assert BatchClient(srv.http).health().status == "ok"  # no key needed


def test_server_error_is_raised(server: Any) -> None:
    async def go() -> None:
        async with StreamingClient(server.ws, sample_rate=SR, encoding="pcm_f32le") as c:
            await c.send_audio(np.full(160, np.nan, "<f4").tobytes())
            await c.wait_closed(timeout=20)

    with pytest.raises(StreamError) as e:
        asyncio.run(go())
    assert e.value.code == "bad_audio" and e.value.close_code == 1007


@pytest.mark.parametrize("last", ["close 1012", "abort", "garbage"])
def test_a_stream_cut_short_raises_instead_of_returning_part_of_a_transcript(last: str) -> None:
    """A server that restarts (1012), a network that drops (no close frame) or a message the client cannot read,
    before ``end``: wait_closed raises; the turns received so far stay readable."""
    from websockets.asyncio.server import serve

    turn = TurnMessage(
        turn_id="t1", channel=0, speaker="S1", start=0.5, end=1.0, text="hello", words=[], confidence=0.9
    )

    async def handler(ws: Any) -> None:
        await ws.recv()  # start
        await ws.send('{"type": "ready", "session_id": "x", "model": "fake", "sample_rate": 16000}')
        await ws.send(turn.model_dump_json())
        if last == "close 1012":
            await ws.close(1012, "restarting")
        elif last == "abort":
            ws.transport.abort()
        else:
            await ws.send('{"type": "surprise"}')
            await asyncio.sleep(5)

    async def go() -> tuple[StreamingClient, BaseException]:
        async with serve(handler, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            c = StreamingClient(f"ws://127.0.0.1:{port}/v1/stream", sample_rate=SR)
            await c.connect()
            try:
                await c.wait_closed(timeout=10)
            except StreamError as e:
                return c, e
            finally:
                await c.close()
        raise AssertionError("wait_closed returned a transcript cut short")

    c, e = asyncio.run(go())
    assert isinstance(e, StreamError)
    assert e.code == ("protocol" if last == "garbage" else "connection_closed"), e
    if last == "close 1012":
        assert e.close_code == 1012
    assert [t.text for t in c.transcript().turns] == ["hello"]


def test_batch_formats_and_errors(server: Any, meeting_wav: Path, rest_transcript: Transcript, tmp_path: Path) -> None:
    client = BatchClient(server.http)
    for fmt in ("srt", "vtt", "rttm", "txt"):
        assert client.transcribe_raw(meeting_wav, fmt) == render(rest_transcript, fmt, "meeting")
    assert client.transcribe(meeting_wav.read_bytes()) == rest_transcript
    flac = tmp_path / "meeting.flac"
    sf.write(flac, sf.read(meeting_wav)[0], SR)
    assert client.transcribe(flac) == rest_transcript  # lossless: the same samples
    with pytest.raises(ApiRequestError) as e:
        client.transcribe(b"this is not audio at all")
    assert e.value.status == 415 and e.value.code == "unsupported_media_type"
    with pytest.raises(ValueError):
        client.transcribe_raw(meeting_wav, "docx")
    assert client.ready()


def test_max_speakers_hint(server: Any, meeting_wav: Path, wav_samples: np.ndarray) -> None:
    hinted = BatchClient(server.http).transcribe(meeting_wav, max_speakers=2)
    assert hinted.turns and len(hinted.speakers) <= 2
    assert stream_transcribe(server.ws, wav_samples, SR, max_speakers=2).turns == hinted.turns


def test_transcript_builder_applies_a_relabel() -> None:
    b = TranscriptBuilder()
    for i, (ch, start) in enumerate([(0, 0.0), (1, 0.5), (0, 2.0)], 1):
        b.add(TurnMessage(turn_id=f"t{i}", channel=ch, speaker=f"S{ch + 1}", start=start, end=start + 1.0, text="x",
                          confidence=1.0))  # fmt: skip
    b.add(RelabelMessage(turns=[Relabel(turn_id="t3", speaker="S2"), Relabel(turn_id="t9", speaker="S5")]))
    b.add(EndMessage(duration=3.0, turns=3))
    t = b.transcript()
    assert [x.speaker for x in t.turns] == ["S1", "S2", "S2"] and t.speakers == ["S1", "S2"] and b.ended
