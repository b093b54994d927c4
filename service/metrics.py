"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RTF_WINDOW_SECONDS = 30.0  # the real-time-factor gauge covers the decode passes of this many wall seconds
LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)  # seconds


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, resident memory, ...
        self.active = Gauge("sts_active_streams", "Open decoding sessions", ["transport"], registry=r)
        self.sessions = Counter("sts_sessions", "Decoding sessions opened", ["transport"], registry=r)
        self.rejected = Counter("sts_rejected", "Sessions refused at capacity", ["transport"], registry=r)
        self.errors = Counter("sts_errors", "Errors sent to clients", ["code"], registry=r)
        self.audio_seconds = Counter("sts_audio_seconds", "Seconds of audio fed to the recognizer", registry=r)
        self.decode_seconds = Counter("sts_decode_seconds", "Wall seconds of decode passes", registry=r)
        self.batch_size = Histogram("sts_decode_batch_streams", "Streams per decode pass",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)  # fmt: skip
        self.rtf = Gauge("sts_decode_real_time_factor",
                         f"Decode seconds per audio second over the last {RTF_WINDOW_SECONDS:.0f} s",
                         registry=r)  # fmt: skip
        self.turn_latency = Histogram(
            "sts_final_turn_latency_seconds",
            "From receiving the audio at a turn's end to sending the final turn (WebSocket)",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self._window: deque[tuple[float, float, float]] = deque()  # (time, busy, audio)

    def observe_pass(self, busy: float, audio: float, streams: int) -> None:
        self.decode_seconds.inc(busy)
        self.audio_seconds.inc(audio)
        self.batch_size.observe(streams)
        now = time.monotonic()
        self._window.append((now, busy, audio))
        while self._window and self._window[0][0] < now - RTF_WINDOW_SECONDS:
            self._window.popleft()
        total_audio = sum(a for _, _, a in self._window)
        if total_audio > 0:
            self.rtf.set(sum(b for _, b, _ in self._window) / total_audio)

    def render(self) -> bytes:
        return generate_latest(self.registry)
