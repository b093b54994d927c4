"""Client helpers for the service tests: stream audio over a real WebSocket, post files over HTTP."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from tests.lively import SR


# -- WebSocket client helpers -------------------------------------------------------------------------
def to_bytes(samples: np.ndarray, encoding: str = "pcm_s16le") -> bytes:
    if encoding == "pcm_s16le":
        return (np.clip(samples, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
    return samples.astype("<f4").tobytes()


async def read_until_closed(ws: Any, timeout: float = 20.0) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server closes; returns them and the close code."""
    import asyncio
    import json

    from websockets.exceptions import ConnectionClosed

    messages: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                messages.append(json.loads(raw))
    except ConnectionClosed:
        pass
    return messages, ws.close_code


async def stream_audio(
    url: str,
    samples: np.ndarray,
    sample_rate: int = SR,
    encoding: str = "pcm_s16le",
    frame_seconds: float = 0.1,
    speed: float = 20.0,
    interim: bool = True,
    relabel: bool = False,
    **connect: Any,
) -> tuple[list[dict[str, Any]], int | None]:
    """Stream ``samples`` at ``speed`` x real time in ``frame_seconds`` frames, then stop; returns every
    server message and the close code."""
    import asyncio
    import json

    from websockets.asyncio.client import connect as ws_connect

    async with ws_connect(url, **connect) as ws:
        await ws.send(json.dumps({"type": "start", "sample_rate": sample_rate, "encoding": encoding,
                                  "interim_results": interim, "relabel": relabel}))  # fmt: skip
        reader = asyncio.create_task(read_until_closed(ws, timeout=60))
        step = max(1, int(frame_seconds * sample_rate))
        for i in range(0, len(samples), step):
            await ws.send(to_bytes(samples[i : i + step], encoding))
            await asyncio.sleep(frame_seconds / speed)
        await ws.send(json.dumps({"type": "stop"}))
        return await reader


def final_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The final turns of a stream's messages, with any relabel applied, in transcript order."""
    changes = {r["turn_id"]: r["speaker"] for m in messages if m["type"] == "relabel" for r in m["turns"]}
    turns = [{k: v for k, v in m.items() if k != "type"} for m in messages if m["type"] == "turn"]
    turns = [{**t, "speaker": changes.get(t["turn_id"], t["speaker"])} for t in turns]
    return sorted(turns, key=lambda t: (t["start"], t["channel"], int(t["turn_id"][1:])))


# -- HTTP helpers (stdlib only) -----------------------------------------------------------------------
def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    """(status, content type, body) of one request; HTTP errors are returned, not raised."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read()


def multipart(data: bytes, filename: str | None = "audio.wav", field: str = "file") -> tuple[bytes, dict[str, str]]:
    """A one-part form body and its headers; ``filename=None`` makes a plain (non-file) field."""
    boundary = "sts-test-boundary-7d3a"
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
    head = (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    return head + data + f"\r\n--{boundary}--\r\n".encode(), {
        "Content-Type": f"multipart/form-data; boundary={boundary}"
    }


def post_audio(base: str, data: bytes, query: str = "", as_form: bool = True,
               headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:  # fmt: skip
    body, h = multipart(data) if as_form else (data, {"Content-Type": "application/octet-stream"})
    return http("POST", f"{base}/v1/transcriptions{query}", body, {**h, **(headers or {})})


def wait_until_no_streams(base: str, transport: str = "ws", seconds: float = 20.0) -> None:
    """Wait (at most ``seconds``: a loaded machine tears sessions down slowly) until the server at ``base`` holds
    no stream of ``transport`` ("ws" or "rest"), and check that it got there."""
    import time

    active = f'sts_active_streams{{transport="{transport}"}}'
    deadline = time.monotonic() + seconds
    while metric(base, active) > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(base, active) == 0


def metric(base: str, name: str, headers: dict[str, str] | None = None) -> float:
    """The value of one sample line of /metrics (0 when absent)."""
    _, _, body = http("GET", f"{base}/metrics", headers=headers)
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


class RawWebSocket:
    """A bare-socket WebSocket client that sends but never reads (to play a stuck client)."""

    def __init__(self, host: str, port: int, path: str = "/v1/stream", rcvbuf: int = 4096) -> None:
        import base64
        import os
        import socket

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()  # fmt: skip
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)  # byte by byte: nothing after the handshake is consumed
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, payload: str | bytes, timeout: float = 5.0) -> None:
        """One masked frame; raises TimeoutError when the server stops reading."""
        import os
        import struct

        opcode, data = (1, payload.encode()) if isinstance(payload, str) else (2, payload)
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = (np.frombuffer(data, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
        self.sock.settimeout(timeout)
        self.sock.sendall(header + mask + masked)

    def abort(self) -> None:
        import socket
        import struct

        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a send blocked in another thread
        self.sock.close()
