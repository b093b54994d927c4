"""REST: ``POST /v1/transcriptions`` (batch), health, readiness, metrics and model list (DESIGN section 6).

A file is read block by block with libsndfile, downmixed to mono, and pushed through the same scheduler as
the WebSocket streams (one chunk per pass, so an upload and live streams share the CPU fairly), with bounded
memory: the upload waits whenever its undecoded audio exceeds ``max_pending_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import PurePath
from typing import IO, Annotated, Any

import numpy as np
import soundfile as sf
import soxr
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect
from starlette.types import Message

from service.deps import ApiError, ReadyState, State, require_key
from service.formats import MEDIA_TYPES, build_transcript, relabelled, render
from service.scheduler import CapacityError, Scheduler
from service.schemas import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    ErrorResponse,
    Health,
    ModelInfo,
    ModelList,
    OutputFormat,
    Transcript,
    Turn,
)
from service.speakers import make_labeller
from service.turns import SpeakerLabeller, TurnAssembler

log = logging.getLogger("sts.rest")
router = APIRouter()
SPOOL_BYTES = 16 << 20  # uploads above this spill from memory to a temporary file
WORK_RATE = 16000  # Hz: files outside the recognizer's 8-48 kHz are resampled to this first
# first bytes of the containers libsndfile reads: a file that starts like one but fails to open is damaged
_KNOWN_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b".snd", b"caff", b"\xff\xfb",
                b"\xff\xf3", b"\xff\xf2", b"\xff\xfa")  # fmt: skip

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc}
    for code, desc in [
        (400, "Empty body, damaged audio, or a multipart form without a file"),
        (401, "Missing or invalid API key"),
        (413, "Body larger than max_upload_bytes or audio longer than max_upload_seconds"),
        (415, "Not an audio format libsndfile reads (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...)"),
        (422, "Invalid query parameter"),
        (500, "A fault of the server (not of the request)"),
        (503, "Every stream slot is busy, or the model is not loaded"),
    ]
}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The audio, as a multipart field `file` or as the raw request body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }  # fmt: skip
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


# -- health, readiness, metrics, models ---------------------------------------------------------------
@router.get("/healthz", response_model=Health, tags=["ops"])
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}}, tags=["ops"])
async def readyz(state: State, response: Response) -> Health:
    """The model is loaded and streams are accepted."""
    if not state.ready:
        response.status_code = 503
        return Health(status="loading")
    return Health(status="ok")


@router.get("/metrics", dependencies=[Depends(require_key)], tags=["ops"],
            response_class=Response, responses={200: {"content": {"text/plain": {}}}})  # fmt: skip
async def metrics(state: State) -> Response:
    """Prometheus text: active streams, audio seconds, decode real-time factor, final-turn latency."""
    from service.metrics import CONTENT_TYPE

    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/models", response_model=ModelList, dependencies=[Depends(require_key)], tags=["models"])
async def models(state: ReadyState) -> ModelList:
    """The loaded model."""
    rec = state.recognizer
    assert rec is not None
    return ModelList(models=[ModelInfo(id=rec.model_name, sample_rate=rec.sample_rate,
                                       chunk_seconds=rec.chunk_seconds)])  # fmt: skip


# -- transcription ------------------------------------------------------------------------------------
@router.post(
    "/v1/transcriptions",
    dependencies=[Depends(require_key)],
    tags=["transcription"],
    response_class=Response,
    responses={
        200: {
            "model": Transcript,
            "description": "The transcript in the requested format",
            "content": {"text/plain": {}, "text/vtt": {}, "application/x-subrip": {}},
        },
        **_ERRORS,
    },  # fmt: skip
    openapi_extra=_UPLOAD_BODY,
)
async def transcribe(
    request: Request,
    state: ReadyState,
    format: Annotated[OutputFormat, Query(description="json, seglst, rttm, stm, srt, vtt or txt")] = "json",
    max_speakers: Annotated[int | None, Query(ge=1, le=64, description="hint: at most this many speakers")] = None,
) -> Response:
    """Transcribe a whole file (any rate, any number of channels: downmixed) into speaker turns."""
    settings = state.settings
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise ApiError(413, "too_large", f"body of {declared} bytes exceeds {settings.max_upload_bytes}")
    body, name = await _receive_upload(request, settings.max_upload_bytes)
    try:
        audio = await asyncio.to_thread(open_audio, body)
        try:
            labeller = make_labeller(state.speaker_embedder, max_speakers)
            transcript = await _while_connected(request, transcribe_file(
                state.scheduler, audio, settings.max_upload_seconds, settings.upload_block_seconds,
                settings.max_turn_seconds, state.model_name, labeller))  # fmt: skip
        finally:
            audio.close()
    finally:
        body.close()
    return Response(render(transcript, format, name), media_type=MEDIA_TYPES[format])


async def _while_connected(request: Request, work: Awaitable[Transcript]) -> Transcript:
    """Run ``work`` (the body has been read); a client that disconnects first cancels it, so that its stream
    slot and CPU go back to the others at once instead of after the whole file is decoded."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this handler is cancelled (shutdown): the decode must not outlive it
        task.cancel()
        raise
    finally:
        gone.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        log.info("client went away during a transcription: cancelled")
        raise ApiError(499, "client_closed_request", "the client disconnected before the transcript was ready")
    return task.result()


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (the body is consumed, so the next ASGI message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)  # never a busy loop, whatever the server sends


class _TooLarge(Exception):
    pass


async def _receive_upload(request: Request, limit: int) -> tuple[IO[bytes], str]:
    """The uploaded bytes in a (spooled) temporary file, and a name for the formats that carry one."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            return await _receive_multipart(request, limit)
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                spool.close()
                raise _TooLarge
            spool.write(chunk)
        if size == 0:
            spool.close()
            raise ApiError(400, "empty_body", "no audio in the request body")
        spool.seek(0)
        return spool, "audio"  # type: ignore[return-value]
    except _TooLarge:
        raise ApiError(413, "too_large", f"body exceeds {limit} bytes") from None
    except ClientDisconnect:
        raise ApiError(499, "client_closed_request", "the client disconnected during the upload") from None


async def _receive_multipart(request: Request, limit: int) -> tuple[IO[bytes], str]:
    received = 0
    upstream = request.receive

    async def counting_receive() -> Message:
        nonlocal received
        message = await upstream()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge
        return message

    form = await Request(request.scope, counting_receive).form(max_files=4, max_fields=16)
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        upload = files[0] if files else None
    if upload is None:
        raise ApiError(400, "missing_file", "multipart body without a `file` field")
    for other in files:
        if other is not upload:
            await other.close()
    upload.file.seek(0, 2)
    if upload.file.tell() == 0:
        raise ApiError(400, "empty_body", "the uploaded file is empty")
    upload.file.seek(0)
    stem = PurePath(upload.filename or "audio").name.split(".")[0] or "audio"
    return upload.file, stem


def open_audio(body: IO[bytes]) -> sf.SoundFile:
    """Open an uploaded audio file (anything libsndfile reads); ApiError 400 / 415 when it cannot be read."""
    head = body.read(16)
    body.seek(0)
    try:
        return sf.SoundFile(body)
    except Exception as e:  # libsndfile reports unknown and damaged files alike
        if head.startswith(_KNOWN_MAGIC):
            raise ApiError(400, "corrupt_audio", f"damaged or truncated audio file: {_reason(e)}") from None
        raise ApiError(415, "unsupported_media_type", f"not a supported audio file: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    return str(e).split(": ", 1)[-1] if ": " in str(e) else str(e)


async def transcribe_file(
    scheduler: Scheduler | None,
    audio: sf.SoundFile,
    max_seconds: float,
    block_seconds: float,
    max_turn_seconds: float,
    model_name: str,
    labeller: SpeakerLabeller,
) -> Transcript:
    """Decode a whole file through ``scheduler`` in blocks of ``block_seconds`` (bounded memory) into a transcript.

    Shared by ``POST /v1/transcriptions`` and the local ``sts-transcribe``; raises ApiError (413 too long, 400
    damaged audio, 503 at capacity)."""
    assert scheduler is not None
    rate = int(audio.samplerate)
    if audio.frames > 0 and audio.frames / rate > max_seconds:
        raise ApiError(413, "too_long", f"{audio.frames / rate:.0f} s of audio exceeds {max_seconds:.0f} s")
    resampler = None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        resampler = soxr.ResampleStream(rate, WORK_RATE, 1, dtype="float32")
    try:
        session = scheduler.open("rest", WORK_RATE if resampler else rate)
    except CapacityError as e:
        raise ApiError(503, "capacity", f"{e}; try again later") from None
    assembler = TurnAssembler(labeller, max_turn_seconds=max_turn_seconds, spell=scheduler.recognizer.spell)
    finals: list[Turn] = []
    collector = asyncio.create_task(_collect(session.outputs.get, assembler, finals))
    block = max(1, round(block_seconds * rate))
    frames = 0
    try:
        while True:
            try:
                data = await asyncio.to_thread(audio.read, block, "float32", True)
            except Exception as e:
                raise ApiError(
                    400, "corrupt_audio", f"damaged audio after {frames / rate:.2f} s: {_reason(e)}"
                ) from None
            last = len(data) == 0
            frames += len(data)
            if frames / rate > max_seconds:
                raise ApiError(413, "too_long", f"audio exceeds {max_seconds:.0f} s")
            mono = np.ascontiguousarray(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], np.float32)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
            labeller.accept_waveform(WORK_RATE if resampler else rate, mono)
            session.push_audio(mono)
            if last:
                break
            await session.wait_for_room()
            if collector.done():  # the session failed early
                break
        session.finish()
        await collector
    finally:
        collector.cancel()
        scheduler.close(session)
    return build_transcript(finals, duration=frames / rate, model=model_name)


async def _collect(get: Callable[[], Awaitable[Any]], assembler: TurnAssembler, finals: list[Turn]) -> None:
    while True:
        out = await get()
        if out.error is not None:
            if out.internal:
                raise ApiError(500, "internal_error", out.error)
            raise ApiError(400, "bad_audio", out.error)
        finals.extend(assembler.push(out.events))
        if out.finalize or out.done:
            finals.extend(assembler.finalize())
        else:
            assembler.partials()  # as the WebSocket path does (provisional labels; finals never depend on them)
        if out.done:
            finals[:] = relabelled(finals, assembler.labeller.relabels(final=True))
            return
