"""Service settings from the environment (prefix ``STS_``), validated once at start-up.

STS_PORT=9000 STS_MODEL=random-tiny STS_API_KEYS=k1,k2 sts-server
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RANDOM_TINY = "random-tiny"  # STS_MODEL value: a seeded random tiny model (development and tests)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STS_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"  # interface to listen on ("0.0.0.0" in containers)
    port: int = Field(default=8000, ge=0, le=65535)  # TCP port
    model: str | None = None  # checkpoint directory; None = bundled model; "random-tiny" = random weights
    max_streams: int = Field(default=8, ge=1)  # concurrent decoding sessions (WebSocket + REST); more are refused
    idle_timeout: float = Field(default=30.0, gt=0)  # seconds without any client message before a stream is closed
    max_session_seconds: float = Field(default=4 * 3600.0, gt=0)  # wall-clock limit of one WebSocket session
    max_pending_seconds: float = Field(default=8.0, gt=0)  # undecoded audio per stream before reading pauses
    max_frame_bytes: int = Field(default=4 << 20, ge=1024)  # largest binary WebSocket frame accepted
    send_queue_size: int = Field(default=256, ge=1)  # server messages waiting for a slow client before it is dropped
    send_timeout: float = Field(default=10.0, gt=0)  # seconds one message may wait on a client that does not read
    max_upload_bytes: int = Field(default=200 << 20, ge=1)  # REST body limit (413 above)
    max_upload_seconds: float = Field(default=4 * 3600.0, gt=0)  # REST audio duration limit (413 above)
    upload_block_seconds: float = Field(default=1.0, gt=0)  # REST: audio read from the file per step
    max_turn_seconds: float = Field(default=30.0, gt=0)  # longer turns are closed at a word boundary
    # torch intra-op threads, applied as OMP_NUM_THREADS before the model is first imported (an explicit
    # OMP_NUM_THREADS wins). 1 is right for the single decode worker: on 2 busy cores, 2 threads made a
    # tiny model's decode 80x slower.
    decode_threads: int = Field(default=1, ge=1)
    speaker_labels: Literal["voice", "channel"] = (
        "voice"  # "voice": cluster turns by voice; "channel": S1/S2 by channel
    )
    api_keys: str = ""  # comma-separated keys; when set, all but /healthz and /readyz need one
    log_level: str = "info"

    @field_validator("model")
    @classmethod
    def _empty_model_is_bundled(cls, v: str | None) -> str | None:
        return v or None

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key_set)
