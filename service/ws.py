"""WebSocket protocol v1 (``/v1/stream``, DESIGN section 5).

Each connection runs four small tasks around one ``StreamSession``:
- reader: client messages -> control actions and audio pushed into the session (pauses when the session has
  ``max_pending_seconds`` of undecoded audio: TCP backpressure on a client that sends too fast);
- pump: the session's decode outputs -> ``TurnAssembler`` -> partial / turn / end messages;
- sender: a bounded queue of outgoing messages -> the socket (a client that does not read is dropped once the
  queue is full or one message waits ``send_timeout``);
- watchdog: idle timeout and maximum session length.

Every misuse is answered with ``{"type": "error", "code", "message"}`` and a close with a fitting code;
the other connections are not affected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import numpy as np
from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ValidationError

from service.deps import ServiceState, authorized
from service.scheduler import CapacityError, StreamSession
from service.schemas import (
    CLIENT_MESSAGE_TYPES,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    EndMessage,
    ErrorMessage,
    FinalizeMessage,
    KeepaliveMessage,
    ReadyMessage,
    Relabel,
    RelabelMessage,
    StartMessage,
    StopMessage,
    Turn,
    TurnMessage,
    client_message_adapter,
)
from service.speakers import make_labeller
from service.turns import ChannelLabeller, SpeakerLabeller, TurnAssembler

log = logging.getLogger("sts.ws")
router = APIRouter()

# close codes (RFC 6455 section 7.4.1)
NORMAL = 1000
GOING_AWAY = 1001  # server shutting down
UNSUPPORTED_DATA = 1003  # encoding or sample rate the server does not take
INVALID_PAYLOAD = 1007  # bad JSON, audio bytes that do not fit the encoding, NaN samples
POLICY = 1008  # protocol misuse, auth, timeouts
TOO_BIG = 1009  # a frame over max_frame_bytes
INTERNAL = 1011
TRY_AGAIN_LATER = 1013  # at capacity

BYTES_PER_SAMPLE = {"pcm_s16le": 2, "pcm_f32le": 4}
MAX_F32_PEAK = 2.0  # pcm_f32le is nominally [-1, 1]; beyond this the client has the scale wrong


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str = ""


class Connection:
    def __init__(self, ws: WebSocket, state: ServiceState) -> None:
        self.ws = ws
        self.state = state
        self.settings = state.settings
        self.metrics = state.metrics
        self.out: asyncio.Queue[str | _Close] = asyncio.Queue(maxsize=self.settings.send_queue_size)
        self.session: StreamSession | None = None
        self.assembler: TurnAssembler | None = None
        self.labeller: SpeakerLabeller = ChannelLabeller()
        self.start: StartMessage | None = None
        self.turns_sent = 0
        self.carry = b""  # bytes of a sample split across binary frames
        self.connected_at = self.last_activity = time.monotonic()
        self.paused = False  # the reader waits for the scheduler (backpressure)
        self.stopping = False  # stop received: flushing
        self.closing = False  # a final error or end has been queued: input is ignored
        self.dropped = asyncio.Event()  # give up on the client without a close handshake
        self.tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------------------
    async def run(self) -> None:
        sender = asyncio.create_task(self._sender())
        reader = asyncio.create_task(self._reader())
        watchdog = asyncio.create_task(self._watchdog())
        dropped = asyncio.create_task(self.dropped.wait())
        self.tasks += [sender, reader, watchdog]
        if not authorized(self.settings, self.ws.headers, self.ws.query_params):
            self.fail("unauthorized", "missing or invalid API key (Authorization: Bearer KEY or ?token=)", POLICY)
        elif self.state.scheduler is None:
            self.fail("not_ready", "the model is not loaded yet", TRY_AGAIN_LATER)
        elif self.state.scheduler.full:
            self.state.scheduler.metrics.rejected.labels("ws").inc()
            self.fail("capacity", "every stream slot is busy; try again later", TRY_AGAIN_LATER)
        try:
            await asyncio.wait({sender, reader, dropped}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done() and not reader.done() and not self.dropped.is_set():
                # close sent: the client's close reply ends the reader
                await asyncio.wait({reader, dropped}, timeout=self.settings.send_timeout)
        finally:
            for t in [*self.tasks, dropped]:
                t.cancel()
            await asyncio.gather(*self.tasks, dropped, return_exceptions=True)
            if self.session is not None and self.state.scheduler is not None:
                self.state.scheduler.close(self.session)

    def send(self, message: BaseModel) -> None:
        """Queue a message; a client whose queue is full is not reading: drop it."""
        try:
            self.out.put_nowait(message.model_dump_json())
        except asyncio.QueueFull:
            self.drop("send queue full")

    def fail(self, code: str, message: str, close_code: int) -> None:
        """Send an error and close (once); the connection's session ends."""
        if self.closing:
            return
        self.closing = True
        self.metrics.errors.labels(code).inc()
        log.info("ws error %s: %s", code, message)
        self.send(ErrorMessage(code=code, message=message))
        self._queue_close(close_code, code)

    def drop(self, why: str) -> None:
        if not self.dropped.is_set():
            self.metrics.errors.labels("slow_consumer").inc()
            log.warning("dropping WebSocket client: %s", why)
            self._abandon()

    def _abandon(self) -> None:
        """Give up on the client now: nothing more is sent, and its stream stops decoding and frees its slot at
        once, not when the connection's tasks have unwound (a backlog of audio it sent could keep a loaded
        server decoding for seconds)."""
        self.closing = True
        self.dropped.set()
        if self.session is not None and self.state.scheduler is not None:
            self.state.scheduler.close(self.session)

    def _queue_close(self, code: int, reason: str = "") -> None:
        try:
            self.out.put_nowait(_Close(code, reason[:120]))
        except asyncio.QueueFull:
            self.drop("send queue full")

    # -- tasks ----------------------------------------------------------------------------------------
    async def _sender(self) -> None:
        while True:
            item = await self.out.get()
            try:
                if isinstance(item, _Close):
                    await asyncio.wait_for(self.ws.close(item.code, item.reason), self.settings.send_timeout)
                    return
                await asyncio.wait_for(self.ws.send_text(item), self.settings.send_timeout)
            except TimeoutError:
                self.drop("send timed out")
                return
            except Exception:  # the client is gone
                self._abandon()
                return

    async def _reader(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except Exception:
                return
            if message["type"] == "websocket.disconnect":
                return
            self.last_activity = time.monotonic()
            if self.closing or self.stopping:
                continue  # after stop or an error only the client's close matters
            try:
                if message.get("text") is not None:
                    self._on_text(message["text"])
                elif message.get("bytes") is not None:
                    await self._on_audio(message["bytes"])
            except Exception as e:  # a bug: this connection fails, the server goes on
                log.exception("WebSocket handler failed")
                self.fail("internal_error", f"internal error: {type(e).__name__}", INTERNAL)

    async def _watchdog(self) -> None:
        period = min(1.0, self.settings.idle_timeout / 4)
        while not self.closing:
            await asyncio.sleep(period)
            now = time.monotonic()
            if now - self.connected_at > self.settings.max_session_seconds:
                self._give_up("session_too_long", f"sessions are limited to {self.settings.max_session_seconds:.0f} s")
            elif not self.paused and not self.stopping and now - self.last_activity > self.settings.idle_timeout:
                self._give_up("idle_timeout", f"no message for {self.settings.idle_timeout:.0f} s")

    def _give_up(self, code: str, message: str) -> None:
        """End a stream the client let run too long: the turns still open hold words already decoded, so they
        are sent final first, then the error."""
        self._send_turns(self.assembler.finalize() if self.assembler else [])
        self.fail(code, message, POLICY)

    async def _pump(self, session: StreamSession, assembler: TurnAssembler, interim: bool, relabel: bool) -> None:
        while True:
            out = await session.outputs.get()
            if self.dropped.is_set():
                return  # nobody to send to; and a backlog of outputs would hold the event loop without a pause
            if out.error is not None:
                if out.internal:
                    self.fail("internal_error", out.error, INTERNAL)
                else:
                    self.fail("bad_audio", out.error, INVALID_PAYLOAD)
                return
            self._send_turns(assembler.push(out.events))
            if out.finalize or out.done:
                self._send_turns(assembler.finalize())
            # labels of earlier finals that the labeller revised (at the end: with the whole meeting)
            if relabel and not self.closing and (changes := assembler.labeller.relabels(final=out.done)):
                self.send(RelabelMessage(turns=[Relabel(turn_id=k, speaker=v) for k, v in changes.items()]))
            if not (out.finalize or out.done):
                partials = assembler.partials()  # provisional labels; final ones never depend on them
                if interim and not self.closing:
                    for p in partials:
                        self.send(p)
            if out.done:
                if not self.closing:
                    self.send(EndMessage(duration=round(session.received_seconds, 3), turns=self.turns_sent))
                    self.closing = True
                    self._queue_close(NORMAL)
                return

    def _send_turns(self, turns: list[Turn]) -> None:
        if self.closing:
            return
        now = time.monotonic()
        for t in turns:
            self.send(TurnMessage.of(t))
            self.turns_sent += 1
            if self.session is not None and (received := self.session.received_at(t.end)) is not None:
                self.metrics.turn_latency.observe(max(0.0, now - received))

    # -- client messages ------------------------------------------------------------------------------
    def _on_text(self, text: str) -> None:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:  # RecursionError: nesting too deep
            self.fail("bad_json", f"text frame is not JSON: {type(e).__name__}: {e}"[:200], INVALID_PAYLOAD)
            return
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(kind, str):
            self.fail("invalid_message", 'a control message is a JSON object with a "type"', POLICY)
            return
        if kind not in CLIENT_MESSAGE_TYPES:
            self.fail("unknown_type", f"unknown message type {kind!r}; expected one of "
                      f"{', '.join(CLIENT_MESSAGE_TYPES)}", POLICY)  # fmt: skip
            return
        try:
            message = client_message_adapter.validate_python(data)
        except ValidationError as e:
            self._invalid(e)
            return
        if isinstance(message, StartMessage):
            self._on_start(message)
        elif isinstance(message, KeepaliveMessage):
            pass
        elif self.session is None:
            self.fail("not_started", f'"{kind}" before "start"', POLICY)
        elif isinstance(message, FinalizeMessage):
            self.session.request_finalize()
        elif isinstance(message, StopMessage):
            self.stopping = True
            self.session.finish()

    def _invalid(self, e: ValidationError) -> None:
        fields = {str(err["loc"][1]) if len(err["loc"]) > 1 else "" for err in e.errors()}
        if "encoding" in fields:
            self.fail("unsupported_encoding", 'encoding must be "pcm_s16le" or "pcm_f32le"', UNSUPPORTED_DATA)
        elif "sample_rate" in fields:
            self.fail("bad_sample_rate", f"sample_rate must be an integer from {MIN_SAMPLE_RATE} to "
                      f"{MAX_SAMPLE_RATE} Hz", UNSUPPORTED_DATA)  # fmt: skip
        else:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"][1:]) or "message"
            self.fail("invalid_message", f"{where}: {first['msg']}", POLICY)

    def _on_start(self, start: StartMessage) -> None:
        if self.start is not None:
            self.fail("already_started", '"start" sent twice', POLICY)
            return
        scheduler = self.state.scheduler
        assert scheduler is not None
        try:
            session = scheduler.open("ws", start.sample_rate)
        except CapacityError as e:
            self.fail("capacity", f"{e}; try again later", TRY_AGAIN_LATER)
            return
        self.start, self.session = start, session
        self.labeller = make_labeller(self.state.speaker_embedder, start.max_speakers)
        self.assembler = TurnAssembler(
            self.labeller, max_turn_seconds=self.settings.max_turn_seconds, spell=scheduler.recognizer.spell
        )
        self.send(ReadyMessage(session_id=session.id, model=self.state.model_name, sample_rate=start.sample_rate))
        pump = asyncio.create_task(self._pump(session, self.assembler, start.interim_results, start.relabel))
        self.tasks.append(pump)
        pump.add_done_callback(self._pump_done)

    def _pump_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("pump failed", exc_info=task.exception())
            self.fail("internal_error", "internal error while assembling turns", INTERNAL)

    async def _on_audio(self, data: bytes) -> None:
        if self.start is None or self.session is None:
            self.fail("audio_before_start", 'binary audio before "start"', POLICY)
            return
        if len(data) > self.settings.max_frame_bytes:
            self.fail("frame_too_large", f"audio frame of {len(data)} bytes exceeds {self.settings.max_frame_bytes}",
                      TOO_BIG)  # fmt: skip
            return
        # frames may have any length (DESIGN section 5): a sample split between frames is joined here
        width = BYTES_PER_SAMPLE[self.start.encoding]
        data = self.carry + data
        whole = len(data) - len(data) % width
        data, self.carry = data[:whole], data[whole:]
        if not data:
            return
        if self.start.encoding == "pcm_s16le":
            samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
        else:
            samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
            if not np.all(np.isfinite(samples)):
                self.fail("bad_audio", "pcm_f32le samples contain NaN or infinity", INVALID_PAYLOAD)
                return
            if (peak := float(np.abs(samples).max())) > MAX_F32_PEAK:
                self.fail("bad_audio", f"pcm_f32le samples must lie in [-1, 1]; got a peak of {peak:.6g} (16-bit "
                          "integers sent as floats?)", INVALID_PAYLOAD)  # fmt: skip
                return
        self.labeller.accept_waveform(self.start.sample_rate, samples)
        self.session.push_audio(samples)
        if self.session.queued_seconds > self.settings.max_pending_seconds:
            self.paused = True
            try:
                await self.session.wait_for_room()
            finally:
                self.paused = False
                self.last_activity = time.monotonic()


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    """Real-time transcription, protocol v1 (see DESIGN section 5)."""
    state: ServiceState = ws.app.state.sts
    await ws.accept()
    try:
        await Connection(ws, state).run()
    except Exception:
        log.exception("WebSocket connection failed")
