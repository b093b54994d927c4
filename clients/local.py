"""Transcribe a file in this process through the service's own REST path (no server, no sockets).

The file is opened and classified exactly as ``POST /v1/transcriptions`` does (``service.rest``), then fed
block by block through a private ``service.scheduler.Scheduler`` into the same ``TurnAssembler``, speaker
labeller (``STS_SPEAKER_LABELS``: by voice, or by channel) and ``build_transcript``, so ``sts-transcribe FILE``
prints what a server with the same model and settings would answer.

    rec = load_recognizer("random-tiny")            # or None: bundled model, or a checkpoint directory
    transcript = transcribe_path("meeting.wav", rec)
"""

from __future__ import annotations

import asyncio
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from service.app import load_recognizer
from service.config import Settings
from service.deps import ApiError
from service.metrics import Metrics
from service.rest import open_audio, transcribe_file
from service.scheduler import Scheduler
from service.schemas import Transcript
from service.speakers import make_labeller
from service.turns import SpeakerLabeller

if TYPE_CHECKING:
    from model.recognizer import Recognizer

__all__ = ["ApiError", "LocalError", "load_recognizer", "make_file_labeller", "session_name", "transcribe_path"]


class LocalError(Exception):
    """The file cannot be transcribed: ``code`` as the REST error codes (missing_file, corrupt_audio, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def session_name(path: str | Path) -> str:
    """The id that SegLST, RTTM and STM give the file: as the REST endpoint names a multipart upload."""
    return PurePath(path).name.split(".")[0] or "audio"


def make_file_labeller(settings: Settings, max_speakers: int | None = None) -> SpeakerLabeller:
    """The labeller the service gives a REST upload under ``settings`` (loads the speaker embedder)."""
    embedder = None
    if settings.speaker_labels == "voice":
        from model.speaker import load_embedder

        embedder = load_embedder()
    return make_labeller(embedder, max_speakers)


async def atranscribe_path(
    path: str | Path, recognizer: Recognizer, settings: Settings | None = None, max_speakers: int | None = None
) -> Transcript:
    settings = settings or Settings()
    p = Path(path)
    if not p.is_file():
        raise LocalError("missing_file", f"no such file: {p}")
    try:
        body = p.open("rb")
    except OSError as e:
        raise LocalError("unreadable_file", f"cannot read {p}: {e.strerror}") from None
    scheduler = Scheduler(recognizer, max_streams=1, max_pending_seconds=settings.max_pending_seconds,
                          metrics=Metrics())  # fmt: skip
    await scheduler.start()
    try:
        if p.stat().st_size == 0:
            raise LocalError("empty_body", f"{p} is empty")
        audio = await asyncio.to_thread(open_audio, body)
        try:
            labeller = await asyncio.to_thread(make_file_labeller, settings, max_speakers)
            return await transcribe_file(scheduler, audio, settings.max_upload_seconds,
                                          settings.upload_block_seconds, settings.max_turn_seconds,
                                          recognizer.model_name, labeller)  # fmt: skip
        finally:
            audio.close()
    except ApiError as e:
        raise LocalError(e.code, e.message) from None
    finally:
        body.close()
        await scheduler.stop()


def transcribe_path(
    path: str | Path, recognizer: Recognizer, settings: Settings | None = None, max_speakers: int | None = None
) -> Transcript:
    """The transcript of an audio file (any format libsndfile reads, any rate, downmixed to mono);
    ``max_speakers`` is the REST endpoint's hint."""
    return asyncio.run(atranscribe_path(path, recognizer, settings, max_speakers))
