"""Load generator for ``/v1/stream``: N concurrent real-time sessions, then held / dropped streams,
final-turn latency percentiles and the server's CPU real-time factor.

    python -m clients.loadgen --url ws://127.0.0.1:8000/v1/stream --streams 1,2,4,8 --file X.wav --duration 60

Final-turn latency: from the moment the frame holding a turn's end (its ``end`` time in the stream) was sent
to the arrival of its ``turn`` message. Turns flushed by ``stop`` are not counted (that is end-of-stream
latency, not steady state). The real-time factors come from the server's ``/metrics`` (same host):
decode RTF = decode seconds / audio seconds; CPU RTF = server process CPU seconds / audio seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import soundfile as sf


@dataclass
class SessionResult:
    ready: bool = False
    ended: bool = False  # got "end" and a normal close
    error: str | None = None
    latencies: list[float] = field(default_factory=list)  # seconds, steady-state final turns
    turns: int = 0
    seconds_sent: float = 0.0
    max_send_lag: float = 0.0  # how far the sender fell behind its real-time schedule (backpressure)


def load_pcm(path: str) -> tuple[bytes, int]:
    """The file as mono pcm_s16le bytes and its sample rate."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    return (np.clip(mono, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes(), int(rate)


async def run_session(
    url: str, pcm: bytes, rate: int, duration: float, frame_seconds: float, delay: float, headers: dict[str, str]
) -> SessionResult:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, WebSocketException

    res = SessionResult()
    await asyncio.sleep(delay)
    frame_bytes = 2 * max(1, round(frame_seconds * rate))
    offset = random.randrange(0, max(1, len(pcm) // frame_bytes)) * frame_bytes  # desynchronise streams
    sent_pos: list[float] = []  # stream seconds at the end of each frame ...
    sent_at: list[float] = []  # ... and when it was sent
    stop_sent = asyncio.Event()
    try:
        async with connect(url, additional_headers=headers, max_size=None) as ws:
            await ws.send(json.dumps({"type": "start", "sample_rate": rate, "encoding": "pcm_s16le"}))

            async def reader() -> None:
                async for raw in ws:
                    m = json.loads(raw)
                    now = time.monotonic()
                    if m["type"] == "ready":
                        res.ready = True
                    elif m["type"] == "turn":
                        res.turns += 1
                        i = bisect.bisect_left(sent_pos, m["end"] - 1e-6)
                        if not stop_sent.is_set() and i < len(sent_at):
                            res.latencies.append(now - sent_at[i])
                    elif m["type"] == "error":
                        res.error = f"{m['code']}: {m['message']}"
                    elif m["type"] == "end":
                        res.ended = True

            reading = asyncio.create_task(reader())
            t0 = time.monotonic()
            n_frames = int(duration / frame_seconds)
            for k in range(n_frames):
                if reading.done():
                    break
                chunk = pcm[offset : offset + frame_bytes]
                if len(chunk) < frame_bytes:  # loop the file
                    chunk += pcm[: frame_bytes - len(chunk)]
                offset = (offset + frame_bytes) % len(pcm)
                await ws.send(chunk)
                now = time.monotonic()
                res.seconds_sent = (k + 1) * frame_seconds
                sent_pos.append(res.seconds_sent)
                sent_at.append(now)
                due = t0 + (k + 1) * frame_seconds
                res.max_send_lag = max(res.max_send_lag, now - due)
                if due > now:
                    await asyncio.sleep(due - now)
            stop_sent.set()
            if not reading.done():
                await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reading, timeout=max(30.0, duration))
    except (ConnectionClosed, WebSocketException, OSError, TimeoutError) as e:
        res.error = res.error or f"{type(e).__name__}: {e}"
    if res.error is None and not res.ended:
        res.error = "no end message"
    return res


def metrics_url(ws_url: str) -> str:
    u = urlsplit(ws_url)
    return urlunsplit(("https" if u.scheme == "wss" else "http", u.netloc, "/metrics", u.query, ""))


def scrape(url: str, headers: dict[str, str]) -> dict[str, float]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_level(args: argparse.Namespace, streams: int, pcm: bytes, rate: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    murl = metrics_url(args.url)
    before, t0 = scrape(murl, headers), time.monotonic()
    results = await asyncio.gather(
        *(
            run_session(
                args.url, pcm, rate, args.duration, args.frame_ms / 1000, args.ramp * i / max(1, streams), headers
            )
            for i in range(streams)
        )
    )
    after, wall = scrape(murl, headers), time.monotonic() - t0
    lat = [x for r in results for x in r.latencies]

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    audio = delta("sts_audio_seconds_total")
    return {
        "streams": streams,
        "held": sum(1 for r in results if r.error is None),
        "dropped": sum(1 for r in results if r.error is not None),
        "errors": sorted({r.error for r in results if r.error})[:5],
        "turns": sum(r.turns for r in results),
        "latency_samples": len(lat),
        "p50_latency_s": round(percentile(lat, 50), 3),
        "p95_latency_s": round(percentile(lat, 95), 3),
        "max_send_lag_s": round(max(r.max_send_lag for r in results), 3),
        "audio_seconds": round(audio, 1),
        "decode_rtf": round(delta("sts_decode_seconds_total") / audio, 3) if audio else None,
        "cpu_rtf": round(delta("process_cpu_seconds_total") / audio, 3) if audio else None,
        "server_cores_busy": round(delta("process_cpu_seconds_total") / wall, 2) if before else None,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m clients.loadgen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--url", default="ws://127.0.0.1:8000/v1/stream")
    p.add_argument("--streams", default="4", help="concurrent sessions; a comma list runs one level after another")
    p.add_argument("--file", required=True, help="audio file (looped if shorter than --duration)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of audio per session")
    p.add_argument("--frame-ms", type=float, default=100.0, help="audio per binary frame")
    p.add_argument("--ramp", type=float, default=2.0, help="seconds over which the sessions start")
    p.add_argument("--token", help="API key")
    p.add_argument("--json", action="store_true", help="one JSON line per level")
    args = p.parse_args(argv)
    pcm, rate = load_pcm(args.file)
    for streams in (int(s) for s in args.streams.split(",")):
        r = asyncio.run(run_level(args, streams, pcm, rate))
        if args.json:
            print(json.dumps(r), flush=True)
            continue
        print(
            f"streams {r['streams']:3d}: held {r['held']:3d}  dropped {r['dropped']:3d}  turns {r['turns']:5d}  "
            f"final-turn latency p50 {r['p50_latency_s']:.3f} s  p95 {r['p95_latency_s']:.3f} s "
            f"(n={r['latency_samples']})  decode RTF {r['decode_rtf']}  CPU RTF {r['cpu_rtf']}  "
            f"server cores busy {r['server_cores_busy']}  max send lag {r['max_send_lag_s']} s",
            flush=True,
        )
        for e in r["errors"]:
            print(f"    error: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
