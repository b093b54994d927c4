"""Batched decoding of every open stream in one worker thread.

Transport never touches the model: a WebSocket connection or a REST upload owns a ``StreamSession`` and
only pushes numpy audio into it and reads ``DecodeOutput`` items from its ``outputs`` queue. The
``Scheduler`` task loops while work exists: each pass takes at most one chunk (320 ms) of queued audio from
every session, and in the worker thread feeds it to the streams and runs ONE ``decode_streams`` call over all
ready streams, so sessions share the CPU round-robin and batch together. The recognizer's streams are only
ever touched inside that single worker thread, or by the event loop while no pass runs.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from service.metrics import Metrics
from service.turns import TokenEventLike

if TYPE_CHECKING:
    from model.recognizer import Recognizer

log = logging.getLogger("sts.scheduler")


class CapacityError(Exception):
    """Every stream slot is taken."""


class _Finalize:
    """Marker in a session's audio queue: close open turns once the audio before it is decoded."""


_FINALIZE = _Finalize()


@dataclass
class DecodeOutput:
    """What one scheduler pass produced for one session (delivered in order)."""

    events: list[TokenEventLike] = field(default_factory=list)  # token events of this pass
    finalize: bool = False  # the client's finalize point was reached after these events
    done: bool = False  # input finished and everything decoded: the last output of the session
    error: str | None = None  # the session failed; no more outputs follow
    internal: bool = False  # the failure is the server's (a decoding bug), not the client's audio


@dataclass
class _Job:
    session: StreamSession
    pieces: list[np.ndarray]
    finish: bool  # call input_finished after the pieces
    finalize: bool  # the finalize marker is next in the queue


class StreamSession:
    """One stream's queue of audio in and decode outputs out. Use it from the event loop only."""

    def __init__(self, scheduler: Scheduler, kind: str, sample_rate: int, stream: Any) -> None:
        self.id = secrets.token_hex(8)
        self.kind = kind  # "ws" or "rest", for metrics
        self.sample_rate = sample_rate  # Hz of the pushed audio
        self.outputs: asyncio.Queue[DecodeOutput] = asyncio.Queue()
        self._scheduler = scheduler
        self._stream = stream  # model.recognizer.Stream: touched only by the scheduler
        self._audio: deque[np.ndarray | _Finalize] = deque()
        self._queued = 0  # samples waiting in _audio
        self._room = asyncio.Event()
        self._room.set()
        self._finish_requested = False
        self._input_closed = False  # input_finished has been called on the stream
        self._done = False  # the done output has been delivered (or the session failed)
        self.closed = False
        self.received_samples = 0  # samples pushed so far
        self._marks_pos: list[float] = []  # audio seconds received ...
        self._marks_time: list[float] = []  # ... at this monotonic time

    # -- producer side --------------------------------------------------------------------------------
    def push_audio(self, samples: np.ndarray) -> None:
        """Queue mono float32 samples at ``sample_rate`` (the scheduler decodes them when it can)."""
        if self._finish_requested or self.closed:
            raise RuntimeError("audio pushed after finish")
        if samples.size == 0 or self._done:  # done: the session failed; its error is in outputs, and the
            return  # scheduler takes no more audio, so queueing it would only block the producer for good
        self._audio.append(samples)
        self._queued += samples.size
        self.received_samples += samples.size
        self._marks_pos.append(self.received_seconds)
        self._marks_time.append(time.monotonic())
        if self.queued_seconds > self._scheduler.max_pending_seconds:
            self._room.clear()
        self._scheduler.wake()

    @property
    def received_seconds(self) -> float:
        return self.received_samples / self.sample_rate

    @property
    def queued_seconds(self) -> float:
        """Audio received but not yet given to the recognizer."""
        return self._queued / self.sample_rate

    async def wait_for_room(self) -> None:
        """Backpressure: returns once the queued audio is below ``max_pending_seconds``."""
        await self._room.wait()

    def request_finalize(self) -> None:
        """Deliver a ``finalize`` output once the audio queued so far has been decoded."""
        if not self._finish_requested:
            self._audio.append(_FINALIZE)
            self._scheduler.wake()

    def finish(self) -> None:
        """End of input: the remaining audio is decoded and a ``done`` output follows."""
        self._finish_requested = True
        self._scheduler.wake()

    def received_at(self, audio_seconds: float) -> float | None:
        """Monotonic time at which the audio up to ``audio_seconds`` had been received (None: unknown)."""
        i = bisect.bisect_left(self._marks_pos, audio_seconds - 1e-6)
        if i >= len(self._marks_pos):
            return None
        return self._marks_time[i]

    # -- scheduler side -------------------------------------------------------------------------------
    def _has_work(self) -> bool:
        if self.closed or self._done:
            return False
        return bool(self._audio) or self._stream.is_ready or (self._finish_requested and not self._done)

    def _take_job(self, chunk_seconds: float) -> _Job:
        budget = max(1, round(chunk_seconds * self.sample_rate))
        pieces: list[np.ndarray] = []
        while budget > 0 and self._audio and not isinstance(self._audio[0], _Finalize):
            head = self._audio[0]
            assert isinstance(head, np.ndarray)
            if head.size <= budget:
                self._audio.popleft()
                pieces.append(head)
                budget -= head.size
            else:
                pieces.append(head[:budget])
                self._audio[0] = head[budget:]
                budget = 0
        taken = sum(p.size for p in pieces)
        self._queued -= taken
        if self.queued_seconds <= self._scheduler.max_pending_seconds:
            self._room.set()
        finalize = bool(self._audio) and isinstance(self._audio[0], _Finalize)
        finish = self._finish_requested and not self._audio and not self._input_closed
        return _Job(self, pieces, finish, finalize)

    def _trim_marks(self) -> None:
        """Keep latency marks for the last two minutes of audio (turns end within that)."""
        cut = bisect.bisect_left(self._marks_pos, self.received_seconds - 120.0)
        if cut > 1000:
            del self._marks_pos[:cut], self._marks_time[:cut]


class Scheduler:
    """Owns the recognizer's worker thread and every open session."""

    def __init__(
        self,
        recognizer: Recognizer,
        max_streams: int,
        max_pending_seconds: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.max_streams = max_streams
        self.max_pending_seconds = max_pending_seconds
        self.metrics = metrics or Metrics()
        self.chunk_seconds = recognizer.chunk_seconds
        self._sessions: dict[str, StreamSession] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sts-decode")
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._passes = itertools.count()

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sts-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for s in list(self._sessions.values()):
            self.close(s)
        self._executor.shutdown(wait=True, cancel_futures=True)

    # -- sessions -------------------------------------------------------------------------------------
    @property
    def active(self) -> int:
        return len(self._sessions)

    @property
    def full(self) -> bool:
        return len(self._sessions) >= self.max_streams

    def open(self, kind: str, sample_rate: int) -> StreamSession:
        """A new session; raises CapacityError when every slot is taken."""
        if self.full:
            self.metrics.rejected.labels(kind).inc()
            raise CapacityError(f"all {self.max_streams} streams are busy")
        session = StreamSession(self, kind, sample_rate, self.recognizer.create_stream())
        self._sessions[session.id] = session
        self.metrics.sessions.labels(kind).inc()
        self.metrics.active.labels(kind).inc()
        return session

    def close(self, session: StreamSession) -> None:
        """Forget a session (idempotent); a pass running now discards its results."""
        if self._sessions.pop(session.id, None) is not None:
            self.metrics.active.labels(session.kind).dec()
        session.closed = True
        session._room.set()  # release a reader waiting for room

    def wake(self) -> None:
        self._wakeup.set()

    # -- the loop -------------------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while True:
                jobs = [s._take_job(self.chunk_seconds) for s in self._sessions.values() if s._has_work()]
                if not jobs:
                    break
                started = time.perf_counter()
                try:
                    results = await loop.run_in_executor(self._executor, self._step, jobs)
                except Exception:  # a bug in decoding: fail this batch, keep serving
                    log.exception("decode pass failed")
                    results = [DecodeOutput(error="internal error while decoding", internal=True) for _ in jobs]
                busy = time.perf_counter() - started
                fed = sum(p.size / j.session.sample_rate for j in jobs for p in j.pieces)
                self.metrics.observe_pass(busy, fed, len(jobs))
                for job, out in zip(jobs, results, strict=True):
                    self._deliver(job, out)
                await asyncio.sleep(0)  # let transport tasks run between passes

    def _deliver(self, job: _Job, out: DecodeOutput) -> None:
        s = job.session
        if s.closed:
            return
        if job.finish:
            s._input_closed = True
        if out.error is None and job.finalize and not s._stream.is_ready:
            s._audio.popleft()  # the marker: everything before it is decoded
            out.finalize = True
        if out.done or out.error is not None:
            s._done = True
            s._room.set()  # nothing more will be taken: never leave a producer waiting
        s._trim_marks()
        if out.events or out.finalize or out.done or out.error is not None:
            s.outputs.put_nowait(out)

    def _step(self, jobs: Sequence[_Job]) -> list[DecodeOutput]:
        """Worker thread: feed the audio, decode one chunk of every ready stream in one batch."""
        outs = [DecodeOutput() for _ in jobs]
        live: list[int] = []
        for i, job in enumerate(jobs):
            stream = job.session._stream
            try:
                for p in job.pieces:
                    stream.accept_waveform(job.session.sample_rate, p)
                if job.finish:
                    stream.input_finished()
                live.append(i)
            except (ValueError, RuntimeError) as e:
                outs[i].error = str(e)
        ready = [jobs[i].session._stream for i in live if jobs[i].session._stream.is_ready]
        if ready:
            self.recognizer.decode_streams(ready)
        for i in live:
            stream = jobs[i].session._stream
            if jobs[i].finalize and not stream.is_ready:
                stream.settle()  # the finalize point: the turns closed now hold every token decoded so far
            outs[i].events = list(stream.pop_events())
            outs[i].done = bool(stream.is_done)
        return outs
