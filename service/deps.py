"""Shared service state, API errors and the auth check (one place for REST and WebSocket)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from starlette.datastructures import Headers, QueryParams

from service.config import Settings
from service.metrics import Metrics
from service.scheduler import Scheduler

if TYPE_CHECKING:
    from model.recognizer import Recognizer
    from model.speaker import Embedder


@dataclass
class ServiceState:
    """What the app's lifespan builds once: settings, the loaded model and its scheduler."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    recognizer: Recognizer | None = None
    speaker_embedder: Embedder | None = None  # loaded when settings.speaker_labels == "voice"
    scheduler: Scheduler | None = None

    @property
    def ready(self) -> bool:
        return self.recognizer is not None and self.scheduler is not None

    @property
    def model_name(self) -> str:
        return self.recognizer.model_name if self.recognizer is not None else ""


class ApiError(Exception):
    """A REST error, rendered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def authorized(settings: Settings, headers: Headers, query: QueryParams) -> bool:
    """True when auth is off, or the request carries a configured key as ``Authorization: Bearer KEY``
    or ``?token=KEY``."""
    keys = settings.api_key_set
    if not keys:
        return True
    candidates = [query.get("token") or ""]
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        candidates.append(value.strip())
    return any(hmac.compare_digest(c.encode(), k.encode()) for c in candidates if c for k in keys)


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.sts
    return state


def require_key(request: Request) -> None:
    if not authorized(get_state(request).settings, request.headers, request.query_params):
        raise ApiError(401, "unauthorized", "missing or invalid API key (Authorization: Bearer KEY or ?token=)")


def require_ready(request: Request) -> ServiceState:
    state = get_state(request)
    if not state.ready:
        raise ApiError(503, "not_ready", "the model is not loaded yet")
    return state


State = Annotated[ServiceState, Depends(get_state)]
ReadyState = Annotated[ServiceState, Depends(require_ready)]
