"""The FastAPI application: ``create_app(settings)``; the model loads once, in the lifespan.

uvicorn --factory service.app:create_app          # settings from STS_* environment variables
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import rest, ws
from service.config import RANDOM_TINY, Settings
from service.deps import ApiError, ServiceState
from service.scheduler import Scheduler
from service.schemas import ErrorResponse

if TYPE_CHECKING:
    from model.recognizer import Recognizer

log = logging.getLogger("sts.app")
STATIC_DIR = Path(__file__).resolve().parent / "static"  # the browser page, where present


def load_recognizer(model: str | None, decode_threads: int = 1) -> Recognizer:
    """The bundled model (None), a random tiny one ("random-tiny"), or a checkpoint directory."""
    if "torch" in sys.modules:
        log.info("torch already imported: decode_threads=%d not applied", decode_threads)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", str(decode_threads))
    from model.recognizer import Recognizer  # the only module that brings in torch

    if model == RANDOM_TINY:
        return Recognizer.random()
    return Recognizer.from_pretrained(model)


def create_app(settings: Settings | None = None, recognizer: Recognizer | None = None) -> FastAPI:
    """The service. ``recognizer`` overrides ``settings.model`` (tests pass a prepared one)."""
    settings = settings or Settings()
    state = ServiceState(settings=settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rec = (
            recognizer
            if recognizer is not None
            else await asyncio.to_thread(load_recognizer, settings.model, settings.decode_threads)
        )
        scheduler = Scheduler(rec, settings.max_streams, settings.max_pending_seconds, state.metrics)
        await scheduler.start()
        state.recognizer, state.scheduler = rec, scheduler
        if settings.speaker_labels == "voice":
            from model.speaker import load_embedder

            state.speaker_embedder = await asyncio.to_thread(load_embedder)
        log.info("model %s loaded; up to %d streams", rec.model_name, settings.max_streams)
        try:
            yield
        finally:
            state.scheduler = None
            await scheduler.stop()

    app = FastAPI(
        title="STS transcription service",
        version="1.0.0",
        summary="Real-time multi-party transcription with a separator-transducer-segmenter",
        description="WebSocket `/v1/stream` (protocol v1) and REST `/v1/transcriptions`; see DESIGN.md.",
        lifespan=lifespan,
    )
    app.state.sts = state
    app.include_router(rest.router)
    app.include_router(ws.router)
    _install_error_handlers(app)
    if STATIC_DIR.is_dir():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(ErrorResponse.of(code, message).model_dump(), status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"])
        return _error(422, "invalid_parameter", f"{where}: {first['msg']}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # a bug: the client still gets the error format of DESIGN section 6 (the traceback goes to the log)
        return _error(500, "internal_error", f"internal error: {type(exc).__name__}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
