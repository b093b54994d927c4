"""Python SDK for the STS service: WebSocket streaming (protocol v1, DESIGN section 5) and REST batch
transcription (section 6). The messages are the service's own pydantic models (``service.schemas``).

Streaming, asynchronously:

    async with StreamingClient("ws://127.0.0.1:8000/v1/stream", sample_rate=16000) as c:
        await c.send_audio(samples)             # float32 ndarray in [-1, 1], int16 ndarray, or raw bytes
        await c.stop()                          # end of audio: the server flushes and closes
        async for event in c.events():          # PartialMessage | TurnMessage | RelabelMessage | EndMessage ...
            ...
    transcript = c.transcript()                 # the final turns as a schemas.Transcript, relabels applied

The same from synchronous code: ``SyncStreamingClient`` (same methods, a private event loop thread), or in
one call ``stream_transcribe(url, samples, sample_rate)``. Batch: ``BatchClient(base_url).transcribe(path)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
from pydantic import ValidationError

from service.formats import build_transcript, relabelled
from service.schemas import (
    OUTPUT_FORMATS,
    Encoding,
    EndMessage,
    ErrorMessage,
    ErrorResponse,
    FinalizeMessage,
    Health,
    KeepaliveMessage,
    ModelList,
    PartialMessage,
    ReadyMessage,
    RelabelMessage,
    StartMessage,
    StopMessage,
    Transcript,
    Turn,
    TurnMessage,
    server_message_adapter,
)

DEFAULT_STREAM_URL = "ws://127.0.0.1:8000/v1/stream"
DEFAULT_HTTP_URL = "http://127.0.0.1:8000"
STREAM_PATH = "/v1/stream"

StreamEvent = PartialMessage | TurnMessage | RelabelMessage | EndMessage | ErrorMessage  # what events() yields
T = TypeVar("T")


class StsError(Exception):
    """Base class of the SDK's errors."""


class StreamError(StsError):
    """The server answered a stream with ``{"type": "error"}`` (``code`` as in the message), or the
    connection failed (``code`` "connection_closed", "protocol")."""

    def __init__(self, code: str, message: str, close_code: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.close_code = close_code


class ApiRequestError(StsError):
    """A REST error: HTTP ``status`` with the service's ``{"error": {"code", "message"}}`` body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


# -- URLs and audio ----------------------------------------------------------------------------------
def stream_url(url: str) -> str:
    """A WebSocket URL for ``/v1/stream`` from a ws(s):// or http(s):// URL; a bare server gets the path."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket or HTTP URL: {url!r}")
    path = parts.path if parts.path not in ("", "/") else STREAM_PATH
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def http_url(url: str) -> str:
    """The server's base http(s):// URL (no trailing slash) from an http(s):// or ws(s):// URL."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https"):
        raise ValueError(f"not an HTTP or WebSocket URL: {url!r}")
    path = parts.path.rstrip("/")
    if path.endswith(STREAM_PATH):
        path = path[: -len(STREAM_PATH)]
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


def encode_audio(audio: bytes | bytearray | memoryview | np.ndarray, encoding: Encoding) -> bytes:
    """Bytes of one binary frame: raw bytes pass through; a float array (samples in [-1, 1]) or an int16
    array (mono, 1-D) is converted to ``encoding``."""
    if isinstance(audio, bytes | bytearray | memoryview):
        return bytes(audio)
    a = np.asarray(audio)
    if a.ndim != 1:
        raise ValueError(f"audio must be mono (1-D), got shape {a.shape}")
    if a.dtype == np.int16:
        if encoding == "pcm_s16le":
            return a.astype("<i2").tobytes()
        return (a.astype(np.float32) / 32768.0).astype("<f4").tobytes()
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"audio samples must be float (in [-1, 1]) or int16, got {a.dtype}")
    if encoding == "pcm_s16le":
        return np.round(np.clip(a, -1.0, 32767 / 32768) * 32768.0).astype("<i2").tobytes()
    return a.astype("<f4").tobytes()


class TranscriptBuilder:
    """Collects stream events into the live view (open partials by turn_id) and the final transcript."""

    def __init__(self) -> None:
        self.turns: list[Turn] = []  # final turns in arrival order
        self.partials: dict[str, PartialMessage] = {}  # open turns, by turn_id
        self.duration = 0.0  # seconds of audio, from the end message (or the last turn)
        self.model = ""
        self.ended = False

    def add(self, event: ReadyMessage | StreamEvent) -> None:
        if isinstance(event, ReadyMessage):
            self.model = event.model
        elif isinstance(event, PartialMessage):
            self.partials[event.turn_id] = event
        elif isinstance(event, TurnMessage):
            self.partials.pop(event.turn_id, None)
            self.turns.append(event.to_turn())
            self.duration = max(self.duration, event.end)
        elif isinstance(event, RelabelMessage):
            self.turns = relabelled(self.turns, {r.turn_id: r.speaker for r in event.turns})
        elif isinstance(event, EndMessage):
            self.duration, self.ended = event.duration, True

    def transcript(self) -> Transcript:
        return build_transcript(self.turns, duration=self.duration, model=self.model)


# -- asynchronous streaming --------------------------------------------------------------------------
class StreamingClient:
    """One WebSocket transcription stream (protocol v1). Use as ``async with``.

    Events are read in the background from the moment the server is ready, so a caller may send all its
    audio before reading any event without the server dropping it as a slow reader.
    """

    def __init__(
        self,
        url: str = DEFAULT_STREAM_URL,
        sample_rate: int = 16000,
        encoding: Encoding = "pcm_s16le",
        token: str | None = None,
        interim_results: bool = True,
        max_speakers: int | None = None,
        relabel: bool = True,
        open_timeout: float = 30.0,
    ) -> None:
        self.url = stream_url(url)
        self.start_message = StartMessage(sample_rate=sample_rate, encoding=encoding, interim_results=interim_results,
                                          max_speakers=max_speakers, relabel=relabel)  # fmt: skip
        self.token = token
        self.open_timeout = open_timeout
        self.ready: ReadyMessage | None = None  # the server's answer to start
        self.builder = TranscriptBuilder()
        self.close_code: int | None = None  # WebSocket close code once closed
        self._ws: Any = None
        self._events: asyncio.Queue[StreamEvent | None] = asyncio.Queue()  # None: connection closed
        self._reader: asyncio.Task[None] | None = None
        self._stopped = False
        self._failure: StreamError | None = None  # why the reader gave up on the server's messages

    @property
    def session_id(self) -> str:
        return self.ready.session_id if self.ready else ""

    async def __aenter__(self) -> StreamingClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> ReadyMessage:
        """Open the socket, send ``start`` and wait for ``ready``; raises StreamError when refused."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            self._ws = await connect(self.url, additional_headers=headers, open_timeout=self.open_timeout,
                                     max_size=None)  # fmt: skip
        except InvalidStatus as e:
            raise StreamError("handshake", f"server refused the WebSocket: HTTP {e.response.status_code}") from None
        except OSError as e:
            raise StreamError("connection_failed", f"cannot connect to {self.url}: {e}") from None
        with contextlib.suppress(ConnectionClosed):  # a refusal may close first: its error is still queued
            await self._ws.send(self.start_message.model_dump_json(exclude_none=True))
        try:
            async with asyncio.timeout(self.open_timeout):
                first = self._parse(await self._ws.recv())
        except ConnectionClosed as e:
            self.close_code = e.rcvd.code if e.rcvd else None
            raise StreamError("connection_closed", "closed before ready", self.close_code) from None
        except TimeoutError:
            await self._ws.close()
            raise StreamError("timeout", f"no ready message within {self.open_timeout:.0f} s") from None
        if isinstance(first, ErrorMessage):
            await self._drain_close()
            raise StreamError(first.code, first.message, self.close_code)
        if not isinstance(first, ReadyMessage):
            await self._ws.close()
            raise StreamError("protocol", f"expected ready, got {first.type}")
        self.ready = first
        self.builder.add(first)
        self._reader = asyncio.create_task(self._read())
        return first

    def _parse(self, raw: str | bytes) -> ReadyMessage | StreamEvent:
        try:
            return server_message_adapter.validate_json(raw)
        except ValidationError as e:
            raise StreamError("protocol", f"unexpected server message: {str(raw)[:200]!r} ({e})") from None

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self._ws:
                event = self._parse(raw)
                if isinstance(event, ReadyMessage):
                    continue
                self.builder.add(event)
                await self._events.put(event)
        except ConnectionClosed:
            pass
        except StreamError as e:  # a message this client does not understand: the stream is not trustworthy
            self._failure = e
            with contextlib.suppress(Exception):
                await self._ws.close()
        finally:
            self.close_code = self._ws.close_code
            await self._events.put(None)

    async def _drain_close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                async for _ in self._ws:
                    pass
        self.close_code = self._ws.close_code

    # -- client messages ------------------------------------------------------------------------------
    async def send_audio(self, audio: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Send one binary frame of audio (see ``encode_audio``); waits when the server applies backpressure."""
        data = encode_audio(audio, self.start_message.encoding)
        if data:
            await self._send(data)

    async def finalize(self) -> None:
        """Ask the server to close every open turn once the audio sent so far is decoded."""
        await self._send(FinalizeMessage().model_dump_json())

    async def keepalive(self) -> None:
        await self._send(KeepaliveMessage().model_dump_json())

    async def stop(self) -> None:
        """End of audio: the server sends the remaining turns, ``end``, and closes."""
        if not self._stopped:
            self._stopped = True
            await self._send(StopMessage().model_dump_json())

    async def _send(self, data: str | bytes) -> None:
        from websockets.exceptions import ConnectionClosed

        if self._ws is None or self.ready is None:
            raise StreamError("not_connected", "connect() first (or use async with)")
        try:
            await self._ws.send(data)
        except ConnectionClosed as e:
            self.close_code = e.rcvd.code if e.rcvd else None
            reason = e.rcvd.reason if e.rcvd else ""
            raise StreamError("connection_closed", f"the server closed the stream ({reason or 'no reason'})",
                              self.close_code) from None  # fmt: skip

    # -- server events --------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[StreamEvent]:
        """Every partial, turn, end and error message, until the server closes the connection."""
        while True:
            event = await self._events.get()
            if event is None:
                self._events.put_nowait(None)  # later calls end at once too
                return
            yield event

    async def wait_closed(self, timeout: float | None = None) -> Transcript:
        """Consume the events until the server closes; the transcript.

        Raises StreamError on an error event, on a server message this client cannot read, and when the
        connection closed before the server's ``end`` (a dropped network or a restarted server): a transcript
        cut short is never returned as if it were whole (``transcript()`` still gives the turns received)."""
        error: ErrorMessage | None = None
        async with asyncio.timeout(timeout):
            async for event in self.events():
                if isinstance(event, ErrorMessage):
                    error = event
        if error is not None:
            raise StreamError(error.code, error.message, self.close_code)
        if self._failure is not None:
            raise self._failure
        if not self.builder.ended:
            raise StreamError("connection_closed", "the connection closed before the end of the stream "
                              f"(close code {self.close_code})", self.close_code)  # fmt: skip
        return self.transcript()

    def transcript(self) -> Transcript:
        """The final turns received so far, ordered by start."""
        return self.builder.transcript()

    async def close(self) -> None:
        """Close the connection (after ``stop``, use ``wait_closed`` first to get every turn)."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def stream_samples(
    client: StreamingClient, samples: np.ndarray, frame_seconds: float = 0.1, realtime: float | None = None
) -> None:
    """Send mono samples (at the client's sample rate) in frames; ``realtime`` = pace (1.0 = real time,
    None = as fast as the server takes them); then ``stop``."""
    loop = asyncio.get_running_loop()
    rate = client.start_message.sample_rate
    step = max(1, round(frame_seconds * rate))
    began = loop.time()
    for i in range(0, len(samples), step):
        await client.send_audio(samples[i : i + step])
        if realtime:
            ahead = began + (i + step) / rate / realtime - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
    await client.stop()


async def astream_transcribe(
    url: str,
    samples: np.ndarray,
    sample_rate: int = 16000,
    token: str | None = None,
    encoding: Encoding = "pcm_s16le",
    frame_seconds: float = 0.1,
    realtime: float | None = None,
    timeout: float | None = 600.0,
    max_speakers: int | None = None,
) -> Transcript:
    """Stream a whole signal and return the final transcript (raises StreamError on a server error)."""
    async with StreamingClient(url, sample_rate=sample_rate, encoding=encoding, token=token,
                               max_speakers=max_speakers) as c:  # fmt: skip
        sender = asyncio.create_task(stream_samples(c, samples, frame_seconds, realtime))
        try:
            transcript = await c.wait_closed(timeout)
        finally:
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, StreamError):
                await sender
        return transcript


def stream_transcribe(url: str, samples: np.ndarray, sample_rate: int = 16000, **kwargs: Any) -> Transcript:
    """Synchronous ``astream_transcribe``."""
    return asyncio.run(astream_transcribe(url, samples, sample_rate, **kwargs))


# -- synchronous streaming ---------------------------------------------------------------------------
class SyncStreamingClient:
    """``StreamingClient`` for synchronous code: runs its own event loop in a thread.

    with SyncStreamingClient(url, sample_rate=16000) as c:
        c.send_audio(samples); c.stop()
        for event in c.events(): ...
    """

    def __init__(self, url: str = DEFAULT_STREAM_URL, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sts-sdk", daemon=True)
        self._thread.start()
        self._client = self._call(self._make(url, kwargs))

    @staticmethod
    async def _make(url: str, kwargs: dict[str, Any]) -> StreamingClient:
        return StreamingClient(url, **kwargs)  # its queues belong to the private loop

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> SyncStreamingClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ready(self) -> ReadyMessage | None:
        return self._client.ready

    @property
    def close_code(self) -> int | None:
        return self._client.close_code

    def connect(self) -> ReadyMessage:
        return self._call(self._client.connect())

    def send_audio(self, audio: bytes | bytearray | memoryview | np.ndarray) -> None:
        self._call(self._client.send_audio(audio))

    def finalize(self) -> None:
        self._call(self._client.finalize())

    def keepalive(self) -> None:
        self._call(self._client.keepalive())

    def stop(self) -> None:
        self._call(self._client.stop())

    def events(self, timeout: float | None = None) -> Iterator[StreamEvent]:
        """The server's events until it closes; ``timeout`` bounds the wait for each one."""
        out: queue.Queue[StreamEvent | None] = queue.Queue()

        async def pump() -> None:
            try:
                async for event in self._client.events():
                    out.put(event)
            finally:
                out.put(None)

        asyncio.run_coroutine_threadsafe(pump(), self._loop)
        while (event := out.get(timeout=timeout)) is not None:
            yield event

    def wait_closed(self, timeout: float | None = None) -> Transcript:
        return self._call(self._client.wait_closed(timeout))

    def transcript(self) -> Transcript:
        return self._client.transcript()

    def close(self) -> None:
        if not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._call(self._client.close(), timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()


# -- REST --------------------------------------------------------------------------------------------
class _MultipartBody(io.RawIOBase):
    """A multipart/form-data body with one file field, read block by block (no copy of the file)."""

    def __init__(self, file: IO[bytes], size: int, filename: str, boundary: str) -> None:
        safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
        tail = f"\r\n--{boundary}--\r\n".encode()
        self._parts: list[IO[bytes]] = [io.BytesIO(head), file, io.BytesIO(tail)]
        self.length = len(head) + size + len(tail)  # bytes of the whole body (Content-Length)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while self._parts:
            data = self._parts[0].read(n if n and n > 0 else -1)
            if data:
                return data
            self._parts.pop(0)
        return b""


class BatchClient:
    """REST client: ``POST /v1/transcriptions`` and the health / model endpoints (stdlib HTTP only)."""

    def __init__(self, base_url: str = DEFAULT_HTTP_URL, token: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = http_url(base_url)
        self.token = token
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> bytes:
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base_url + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                data: bytes = r.read()
                return data
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = ErrorResponse.model_validate_json(raw).error
                raise ApiRequestError(e.code, err.code, err.message) from None
            except ValidationError:
                raise ApiRequestError(e.code, "http_error", raw.decode(errors="replace")[:500] or str(e)) from None
        except urllib.error.URLError as e:
            raise StsError(f"cannot reach {self.base_url}: {e.reason}") from None
        except TimeoutError:
            raise StsError(f"no answer from {self.base_url} within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as e:  # the connection dropped while waiting for the answer
            raise StsError(f"the connection to {self.base_url} failed: {type(e).__name__}: {e}") from None

    def transcribe_raw(
        self, audio: str | Path | bytes, format: str = "json", filename: str | None = None,
        max_speakers: int | None = None,
    ) -> str:  # fmt: skip
        """The transcript of a file (a path, or the file's bytes) in ``format``, as the server renders it.

        ``filename`` (default: the path's name) names the session in SegLST, RTTM and STM; ``max_speakers``
        is a hint for the speaker labels."""
        if format not in OUTPUT_FORMATS:
            raise ValueError(f"unknown format {format!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
        boundary = f"sts-{uuid.uuid4().hex}"
        with contextlib.ExitStack() as stack:
            if isinstance(audio, bytes):
                file: IO[bytes] = io.BytesIO(audio)
                size, name = len(audio), filename or "audio"
            else:
                path = Path(audio)
                file = stack.enter_context(path.open("rb"))
                size, name = path.stat().st_size, filename or path.name
            body = _MultipartBody(file, size, name, boundary)
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(body.length)}
            query = urllib.parse.urlencode(
                {"format": format, **({"max_speakers": max_speakers} if max_speakers else {})}
            )
            try:
                data = self._request("POST", f"/v1/transcriptions?{query}", body, headers)
            except StsError as e:
                if isinstance(e, ApiRequestError):
                    raise
                # the server may refuse (bad key, too large) and close before the upload ends: the client then
                # sees a broken pipe, not the answer; a bodiless request gets the real reason where there is one
                self.models()
                raise
        return data.decode("utf-8")

    def transcribe(
        self, audio: str | Path | bytes, filename: str | None = None, max_speakers: int | None = None
    ) -> Transcript:
        """The JSON transcript of a file as a ``schemas.Transcript``."""
        return Transcript.model_validate_json(self.transcribe_raw(audio, "json", filename, max_speakers))

    def health(self) -> Health:
        return Health.model_validate_json(self._request("GET", "/healthz"))

    def ready(self) -> bool:
        """True when the model is loaded (``/readyz`` answers 200)."""
        try:
            self._request("GET", "/readyz")
            return True
        except ApiRequestError:
            return False

    def models(self) -> ModelList:
        return ModelList.model_validate_json(self._request("GET", "/v1/models"))


def turns_text(transcript: Transcript) -> str:
    """``speaker: text`` lines (a quick look at a transcript)."""
    return "".join(f"{t.speaker}: {t.text}\n" for t in transcript.turns)


__all__ = [
    "ApiRequestError",
    "BatchClient",
    "StreamError",
    "StreamEvent",
    "StreamingClient",
    "StsError",
    "SyncStreamingClient",
    "TranscriptBuilder",
    "astream_transcribe",
    "encode_audio",
    "http_url",
    "stream_samples",
    "stream_transcribe",
    "stream_url",
]
