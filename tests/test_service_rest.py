"""REST against a real server: formats, audio containers and rates, errors, auth, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.lively import SR
from tests.service_client import http, multipart, post_audio, read_until_closed, wait_until_no_streams

pytest_plugins = ["tests.service_fixtures"]


def _encode(samples: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _error(body: bytes) -> str:
    err = json.loads(body)["error"]
    assert set(err) == {"code", "message"} and err["message"]
    return str(err["code"])


@pytest.fixture(scope="module")
def reference(server: Any, meeting_wav: Any) -> dict[str, Any]:
    status, _, body = post_audio(server.http, meeting_wav.read_bytes())
    assert status == 200
    out: dict[str, Any] = json.loads(body)
    return out


def test_raw_body_equals_multipart(server: Any, meeting_wav: Any, reference: dict[str, Any]) -> None:
    status, _, body = post_audio(server.http, meeting_wav.read_bytes(), as_form=False)
    assert status == 200 and json.loads(body) == reference
    assert reference["duration"] == 12.0 and reference["model"] == "sts-tiny-lively" and reference["turns"]


@pytest.mark.parametrize(
    ("fmt", "ctype", "check"),
    [
        ("seglst", "application/json", lambda b, r: len(json.loads(b)) == len(r["turns"])
         and set(json.loads(b)[0]) == {"session_id", "speaker", "start_time", "end_time", "words"}),
        ("rttm", "text/plain", lambda b, r: b.decode().count("SPEAKER meeting 1 ") == len(r["turns"])),
        ("stm", "text/plain", lambda b, r: len(b.decode().splitlines()) == len(r["turns"])),
        ("srt", "application/x-subrip", lambda b, r: b.decode().startswith("1\n00:00:")),
        ("vtt", "text/vtt", lambda b, r: b.decode().startswith("WEBVTT\n\n")),
        ("txt", "text/plain", lambda b, r: b.decode().splitlines()[0].startswith(r["turns"][0]["speaker"] + ": ")),
    ],
)  # fmt: skip
def test_formats(server: Any, meeting_wav: Any, reference: dict[str, Any], fmt: str, ctype: str, check: Any) -> None:
    body, headers = multipart(meeting_wav.read_bytes(), filename="meeting.wav")
    status, content_type, out = http("POST", f"{server.http}/v1/transcriptions?format={fmt}", body, headers)
    assert status == 200 and content_type.startswith(ctype)
    assert check(out, reference)


@pytest.mark.parametrize(
    ("name", "rate", "channels", "fmt", "subtype"),
    [
        ("stereo 44.1 kHz FLAC", 44100, 2, "FLAC", None),
        ("8 kHz OGG Vorbis", 8000, 1, "OGG", "VORBIS"),
        ("22.05 kHz MP3", 22050, 1, "MP3", None),
        ("96 kHz float WAV (resampled in the service)", 96000, 1, "WAV", "FLOAT"),
        ("6 kHz WAV (resampled in the service)", 6000, 1, "WAV", "PCM_16"),
    ],
)
def test_containers_rates_and_channels(
    server: Any, meeting_audio: Any, name: str, rate: int, channels: int, fmt: str, subtype: str | None
) -> None:
    samples = soxr.resample(meeting_audio[0], SR, rate).astype(np.float32)
    if channels == 2:
        samples = np.stack([samples, 0.5 * samples], axis=1)
    status, _, body = post_audio(server.http, _encode(samples, rate, fmt, subtype))
    assert status == 200, (name, body)
    out = json.loads(body)
    assert out["duration"] == pytest.approx(12.0, abs=0.1), name
    assert len(out["turns"]) >= 4, name


def test_errors(make_server: Any, meeting_wav: Any) -> None:
    srv = make_server(max_upload_bytes=300_000, max_upload_seconds=10.0)
    wav = meeting_wav.read_bytes()  # 12 s, 384 kB
    short = _encode(np.zeros(SR, np.float32), SR, "WAV", "PCM_16")
    cases = [
        ("garbage bytes", post_audio(srv.http, b"this is not audio at all " * 40), 415, "unsupported_media_type"),
        ("truncated WAV header", post_audio(srv.http, short[:30]), 400, "corrupt_audio"),
        ("truncated FLAC", post_audio(srv.http, _encode(np.random.RandomState(0).randn(SR).astype(np.float32) * 0.1,
                                                         SR, "FLAC")[:3000]), 400, "corrupt_audio"),
        ("empty body", post_audio(srv.http, b"", as_form=False), 400, "empty_body"),
        ("form without file", http("POST", f"{srv.http}/v1/transcriptions",
                                   *multipart(b"x", filename=None, field="notes")), 400, "missing_file"),
        ("too large (raw)", post_audio(srv.http, wav, as_form=False), 413, "too_large"),
        ("too large (form)", post_audio(srv.http, wav), 413, "too_large"),
        ("too long", post_audio(srv.http, _encode(np.zeros(11 * 8000, np.float32), 8000, "WAV", "PCM_U8")),
         413, "too_long"),
        ("wrong format", post_audio(srv.http, short, "?format=docx"), 422, "invalid_parameter"),
        ("unknown route", http("GET", f"{srv.http}/v1/nothing"), 404, "not_found"),
    ]  # fmt: skip
    for name, (status, ctype, body), want_status, want_code in cases:
        assert status == want_status, (name, status, body)
        assert ctype.startswith("application/json"), name
        assert _error(body) == want_code, name
    status, _, body = http("POST", f"{srv.http}/v1/transcriptions", *multipart(b""))
    assert status == 400 and _error(body) == "empty_body"
    status, _, _ = post_audio(srv.http, short)  # the server still serves
    assert status == 200


def test_health_models_metrics_openapi(server: Any, meeting_wav: Any) -> None:
    assert http("GET", f"{server.http}/healthz")[0] == 200
    status, _, body = http("GET", f"{server.http}/readyz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, _, body = http("GET", f"{server.http}/v1/models")
    assert status == 200 and json.loads(body)["models"][0]["id"] == "sts-tiny-lively"
    post_audio(server.http, meeting_wav.read_bytes())
    status, ctype, body = http("GET", f"{server.http}/metrics")
    text = body.decode()
    assert status == 200 and ctype.startswith("text/plain")
    for name in ("sts_active_streams", "sts_audio_seconds_total", "sts_decode_real_time_factor",
                 "sts_final_turn_latency_seconds_bucket", "process_cpu_seconds_total"):  # fmt: skip
        assert name in text, name
    status, _, body = http("GET", f"{server.http}/openapi.json")
    spec = json.loads(body)
    assert "/v1/transcriptions" in spec["paths"] and "multipart/form-data" in json.dumps(spec["paths"])
    assert http("GET", f"{server.http}/docs")[0] == 200


def test_auth(make_server: Any, meeting_wav: Any) -> None:
    srv = make_server(api_keys="k1, k2")
    wav = meeting_wav.read_bytes()
    assert http("GET", f"{srv.http}/healthz")[0] == 200 and http("GET", f"{srv.http}/readyz")[0] == 200
    for path in ("/metrics", "/v1/models"):
        status, _, body = http("GET", f"{srv.http}{path}")
        assert status == 401 and _error(body) == "unauthorized", path
        assert http("GET", f"{srv.http}{path}", headers={"Authorization": "Bearer k2"})[0] == 200
    assert post_audio(srv.http, wav)[0] == 401
    assert post_audio(srv.http, wav, headers={"Authorization": "Bearer nope"})[0] == 401
    assert post_audio(srv.http, wav, "?token=k1")[0] == 200
    assert post_audio(srv.http, wav, headers={"Authorization": "Bearer k1"})[0] == 200

    async def ws(url: str, **kw: Any) -> tuple[list[dict[str, Any]], int | None]:
        async with connect(url, **kw) as c:
            with contextlib.suppress(ConnectionClosed):  # refused: the server may close first
                await c.send(json.dumps({"type": "start"}))
                await c.send(json.dumps({"type": "stop"}))
            return await read_until_closed(c, timeout=10)

    messages, code = asyncio.run(ws(srv.ws))
    assert messages[-1]["code"] == "unauthorized" and code == 1008
    messages, code = asyncio.run(ws(srv.ws + "?token=k2"))
    assert [m["type"] for m in messages] == ["ready", "end"] and code == 1000
    messages, code = asyncio.run(ws(srv.ws, additional_headers={"Authorization": "Bearer k1"}))
    assert [m["type"] for m in messages] == ["ready", "end"] and code == 1000


def test_the_recognizers_lexicon_repairs_the_transcripts_words(lively: Any, meeting_audio: Any, meeting_wav: Any,
                                                               reference: dict[str, Any]) -> None:  # fmt: skip
    """A lexicon that knows every word of the reference transcript except one, and a neighbour of that one (one
    letter replaced): the service shows the neighbour there and every other word as before, over REST and in the
    WebSocket stream's partials and finals."""
    from model.lexicon import Lexicon
    from model.recognizer import Recognizer
    from tests.service_client import final_turns, stream_audio
    from tests.service_fixtures import TEST_SETTINGS, ServerHandle

    words = [w["word"] for t in reference["turns"] for w in t["words"]]
    target = next(w for w in words if len(w) >= 3)
    fixed = target[:-1] + ("q" if target[-1] != "q" else "z")
    counts = {w: 1 for w in words if w != target} | {fixed: 1000}  # the most frequent of its neighbours
    rec = Recognizer(lively.model, lively.config.streaming, lively.lm, Lexicon(counts))
    handle = ServerHandle(rec, **TEST_SETTINGS)
    try:
        status, _, body = post_audio(handle.http, meeting_wav.read_bytes())
        messages, code = asyncio.run(stream_audio(handle.ws, meeting_audio[0], frame_seconds=0.02, speed=20))
    finally:
        handle.stop()
    assert status == 200 and code == 1000
    expected = [fixed if w == target else w for w in words]
    assert [w["word"] for t in json.loads(body)["turns"] for w in t["words"]] == expected and fixed in expected
    assert [w["word"] for t in final_turns(messages) for w in t["words"]] == expected
    shown = {w for m in messages if m["type"] == "partial" for w in m["text"].split()}
    assert fixed in shown and target not in shown


def test_a_decoding_fault_is_the_servers_error_not_bad_audio(
    make_server: Any, meeting_wav: Any, lively: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in decoding answers 500 internal_error (REST) and internal_error / 1011 (WebSocket), never the
    client's "bad audio"; the server goes on serving."""
    srv = make_server()

    def broken(streams: Any) -> None:
        raise RuntimeError("simulated decoder fault")

    monkeypatch.setattr(lively, "decode_streams", broken)
    status, ctype, body = post_audio(srv.http, meeting_wav.read_bytes())
    assert status == 500 and ctype.startswith("application/json") and _error(body) == "internal_error"

    async def stream() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(srv.ws) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": SR}))
            with contextlib.suppress(ConnectionClosed):
                await ws.send(b"\x00\x00" * SR)
            return await read_until_closed(ws, timeout=10)

    messages, code = asyncio.run(stream())
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == "internal_error" and code == 1011
    monkeypatch.undo()
    assert post_audio(srv.http, meeting_wav.read_bytes())[0] == 200


def test_a_client_that_leaves_cancels_its_transcription(
    make_server: Any, meeting_wav: Any, lively: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload whose client disconnects stops decoding at once and frees its stream slot (not after the whole
    file); counted in decode passes, not seconds, so a slow machine does not change the verdict."""
    import socket
    import time

    srv = make_server()
    passes = [0]
    decode = lively.decode_streams

    def slow(streams: Any) -> Any:  # 12 s of audio = about 38 passes of 0.32 s, each now 0.1 s or more
        passes[0] += 1
        time.sleep(0.1)
        return decode(streams)

    monkeypatch.setattr(lively, "decode_streams", slow)
    body, headers = multipart(meeting_wav.read_bytes())
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(f"POST /v1/transcriptions HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
                  + body)  # fmt: skip
        deadline = time.monotonic() + 20
        while passes[0] < 3 and time.monotonic() < deadline:  # decoding has started
            time.sleep(0.02)
        assert passes[0] >= 3
    at_close = passes[0]
    wait_until_no_streams(srv.http, "rest")
    assert passes[0] - at_close <= 5, (at_close, passes[0])  # the whole file would take about 38


def test_server_command_rejects_bad_settings_as_usage_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.__main__ import main

    for argv, env, word in (
        (["--max-streams", "0"], {}, "max_streams"),
        ([], {"STS_IDLE_TIMEOUT": "-1"}, "idle_timeout"),
    ):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert word in capsys.readouterr().err
