"""``sts-stream FILE|-``: stream audio to a running service and print live captions per speaker.

A file (anything libsndfile reads) is sent at real-time pace (``--fast``: as fast as the server takes it);
``-`` reads raw PCM s16le mono from standard input (16 kHz, or ``--rate``). On a terminal the open turns
update in place on one status line and each final turn is printed above it; when the output is piped, only
the final turns are printed, one line each. Speaker labels the server revises (during the stream and at its end)
are reported on standard error and applied to the ``--output`` transcript.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from typing import TextIO

import numpy as np

from clients.sdk import DEFAULT_STREAM_URL, StreamError, StreamingClient, StsError
from service.formats import render
from service.schemas import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    OUTPUT_FORMATS,
    Encoding,
    EndMessage,
    ErrorMessage,
    PartialMessage,
    RelabelMessage,
    TurnMessage,
)

FRAME_SECONDS = 0.1  # audio per WebSocket frame
STDIN_BLOCK = 3200  # bytes read from standard input at a time (100 ms of 16 kHz s16le)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sts-stream", description=__doc__.split("\n\n")[1])
    p.add_argument("source", metavar="FILE|-", help="audio file, or - for raw PCM s16le mono on standard input")
    p.add_argument("--url", default=DEFAULT_STREAM_URL, help=f"service WebSocket URL (default {DEFAULT_STREAM_URL})")
    p.add_argument("--token", default=os.environ.get("STS_TOKEN"), help="API key (default: $STS_TOKEN)")
    p.add_argument("--fast", action="store_true", help="send as fast as the server takes it, not in real time")
    p.add_argument("--rate", type=int, default=16000, help="sample rate of standard input (Hz, default 16000)")
    p.add_argument("--max-speakers", type=int, metavar="N", help="hint: at most N speakers (1-64)")
    p.add_argument("--no-partials", action="store_true", help="do not ask for partial results")
    p.add_argument("--output", "-o", metavar="FILE", help="also write the final transcript to FILE")
    p.add_argument("--format", "-f", choices=OUTPUT_FORMATS, default="json", help="format of --output (json)")
    return p


# -- audio sources -----------------------------------------------------------------------------------
async def file_frames(path: str, realtime: bool) -> tuple[int, AsyncIterator[np.ndarray]]:
    """(sample rate, mono float32 frames of FRAME_SECONDS) of a file, paced in real time if asked."""
    import soundfile as sf
    import soxr

    f = sf.SoundFile(path)
    rate = int(f.samplerate)
    out_rate = rate if MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE else 16000
    resampler = soxr.ResampleStream(rate, out_rate, 1, dtype="float32") if out_rate != rate else None
    block = max(1, round(FRAME_SECONDS * rate))

    async def frames() -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        began, sent = loop.time(), 0
        try:
            while True:
                data = f.read(block, dtype="float32", always_2d=True)
                last = len(data) < block
                mono = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                if mono.size:
                    yield mono
                sent += len(data)
                if last:
                    return
                if realtime and (ahead := began + sent / rate - loop.time()) > 0:
                    await asyncio.sleep(ahead)
        finally:
            f.close()

    return out_rate, frames()


async def stdin_frames(stream: TextIO) -> AsyncIterator[bytes]:
    """Raw bytes from standard input, in even-length pieces (whole s16le samples)."""
    raw = stream.buffer
    carry = b""
    while True:
        data = await asyncio.to_thread(raw.read1, STDIN_BLOCK) if hasattr(raw, "read1") else raw.read(STDIN_BLOCK)
        if not data:
            return
        data = carry + data
        cut = len(data) - len(data) % 2
        carry = data[cut:]
        if cut:
            yield data[:cut]


# -- display -----------------------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m):02d}:{s:05.2f}"


class Captions:
    """Prints final turns as lines; on a terminal, also the open turns on one line redrawn in place."""

    def __init__(self, out: TextIO, live: bool) -> None:
        self.out = out
        self.live = live
        self.partials: dict[str, PartialMessage] = {}  # open turns by turn_id
        self._shown = False  # the status line is on screen

    def partial(self, p: PartialMessage) -> None:
        self.partials[p.turn_id] = p
        self._redraw()

    def turn(self, t: TurnMessage) -> None:
        self.partials.pop(t.turn_id, None)
        self._clear()
        self.out.write(f"[{_clock(t.start)} - {_clock(t.end)}] {t.speaker}: {t.text}\n")
        self._redraw()

    def _clear(self) -> None:
        if self.live and self._shown:
            self.out.write("\r\x1b[2K")
            self._shown = False

    def _redraw(self) -> None:
        if not self.live:
            self.out.flush()
            return
        self._clear()
        if self.partials:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            line = " | ".join(f"{p.speaker}: {p.text}" for p in sorted(self.partials.values(), key=lambda p: p.start))
            line = line if len(line) <= width else "…" + line[-(width - 1) :]
            self.out.write(f"\x1b[2m{line}\x1b[0m")
            self._shown = True
        self.out.flush()

    def close(self) -> None:
        self._clear()
        self.out.flush()


# -- main --------------------------------------------------------------------------------------------
async def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    encoding: Encoding
    if args.source == "-":
        rate, encoding = args.rate, "pcm_s16le"
        source: AsyncIterator[bytes] | AsyncIterator[np.ndarray] = stdin_frames(sys.stdin)
    else:
        try:
            rate, source = await file_frames(args.source, realtime=not args.fast)
        except Exception as e:  # libsndfile: missing, unknown or damaged file
            print(f"sts-stream: error: cannot read {args.source}: {e}", file=err)
            return 1
        encoding = "pcm_f32le"
    captions = Captions(out, live=out.isatty())
    try:
        async with StreamingClient(args.url, sample_rate=rate, encoding=encoding, token=args.token,
                                   interim_results=not args.no_partials, max_speakers=args.max_speakers,
                                   ) as client:  # fmt: skip
            read_error: list[str] = []

            async def send() -> None:
                try:
                    async for frame in source:
                        await client.send_audio(frame)
                except StreamError:
                    raise
                except Exception as e:  # the source failed part-way (a damaged or truncated file, a broken pipe)
                    read_error.append(f"{type(e).__name__}: {e}")
                await client.stop()  # the audio read so far is still transcribed

            sender = asyncio.create_task(send())
            error: ErrorMessage | None = None
            end: EndMessage | None = None
            async for event in client.events():
                if isinstance(event, PartialMessage):
                    captions.partial(event)
                elif isinstance(event, TurnMessage):
                    captions.turn(event)
                elif isinstance(event, RelabelMessage):
                    changes = ", ".join(f"{r.turn_id} -> {r.speaker}" for r in event.turns)
                    print(f"sts-stream: speaker labels revised: {changes}", file=err)
                elif isinstance(event, ErrorMessage):
                    error = event
                elif isinstance(event, EndMessage):
                    end = event
            captions.close()
            if not sender.done():
                sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, StreamError):
                pass
            if read_error:
                print(f"sts-stream: error: reading {args.source} failed part-way: {read_error[0]}", file=err)
            if error is not None:
                print(f"sts-stream: error from server: {error.code}: {error.message}", file=err)
                return 1
            if end is None:
                print(f"sts-stream: error: connection closed without end (code {client.close_code})", file=err)
                return 1
            if args.output:
                with open(args.output, "w", encoding="utf-8") as f:
                    f.write(render(client.transcript(), args.format, _name(args.source)))
            print(f"sts-stream: {end.duration:.2f} s of audio, {end.turns} turns", file=err)
            return 1 if read_error else 0
    except StsError as e:
        captions.close()
        print(f"sts-stream: error: {e}", file=err)
        return 1


def _name(source: str) -> str:
    return "stdin" if source == "-" else os.path.basename(source).split(".")[0] or "audio"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not MIN_SAMPLE_RATE <= args.rate <= MAX_SAMPLE_RATE:
        print(f"sts-stream: error: --rate must be {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args, sys.stdout, sys.stderr))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
