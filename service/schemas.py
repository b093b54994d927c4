"""Typed messages of the STS service: the transcript JSON (DESIGN section 4), the WebSocket protocol v1
(section 5) and the REST error body (section 6).

Pure pydantic: importing this module starts nothing and needs neither FastAPI nor the model, so the client
SDK and the command line can share it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1
MIN_SAMPLE_RATE = 8000  # Hz, lowest rate a WebSocket client may send
MAX_SAMPLE_RATE = 48000  # Hz, highest rate a WebSocket client may send

Encoding = Literal["pcm_s16le", "pcm_f32le"]
ENCODINGS: tuple[str, ...] = ("pcm_s16le", "pcm_f32le")
OutputFormat = Literal["json", "seglst", "rttm", "stm", "srt", "vtt", "txt"]
OUTPUT_FORMATS: tuple[str, ...] = ("json", "seglst", "rttm", "stm", "srt", "vtt", "txt")


class _Model(BaseModel):
    # unknown fields are ignored, so that a newer peer's additions do not break an older one
    model_config = ConfigDict(extra="ignore")


# -- transcript (section 4) ---------------------------------------------------------------------------
class Word(_Model):
    """One recognised word."""

    word: str
    start: float = Field(description="seconds from the start of the stream or file")
    end: float = Field(description="seconds from the start of the stream or file")
    confidence: float = Field(ge=0.0, le=1.0, description="exp(mean log-probability of its tokens)")


class Turn(_Model):
    """One speaker turn: what one output channel said between its <sot> and <eot>."""

    turn_id: str = Field(description='"t1", "t2", ... in order of appearance within one stream or file')
    channel: int = Field(ge=0, le=1, description="output channel of the model")
    speaker: str = Field(description='meeting-wide speaker label ("S1", "S2", ...)')
    start: float
    end: float
    text: str
    confidence: float = Field(ge=0.0, le=1.0)
    words: list[Word] = Field(default_factory=list)


class Transcript(_Model):
    """The JSON output for one stream or file."""

    duration: float = Field(description="seconds of audio")
    model: str
    speakers: list[str] = Field(default_factory=list, description="labels used by the turns, sorted")
    turns: list[Turn] = Field(default_factory=list, description="final turns by start time")


# -- WebSocket: client to server ----------------------------------------------------------------------
class StartMessage(_Model):
    type: Literal["start"] = "start"
    sample_rate: int = Field(default=16000, ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE, description="Hz of the audio")
    encoding: Encoding = "pcm_s16le"
    interim_results: bool = Field(default=True, description="send partial messages for open turns")
    max_speakers: int | None = Field(default=None, ge=1, le=64, description="hint: at most this many speakers")
    relabel: bool = Field(
        default=False,
        description="send relabel messages with the final turns whose speaker label a revision changed, during the "
        "stream and before end (protocol notes: v1.1, v1.2)",
    )


class FinalizeMessage(_Model):
    """Close every open turn now (after the audio sent before it has been decoded)."""

    type: Literal["finalize"] = "finalize"


class KeepaliveMessage(_Model):
    type: Literal["keepalive"] = "keepalive"


class StopMessage(_Model):
    """End of audio: the server flushes, sends the remaining turns and ``end``, then closes."""

    type: Literal["stop"] = "stop"


ClientMessage = Annotated[StartMessage | FinalizeMessage | KeepaliveMessage | StopMessage, Field(discriminator="type")]
CLIENT_MESSAGE_TYPES: tuple[str, ...] = ("start", "finalize", "keepalive", "stop")
client_message_adapter: TypeAdapter[StartMessage | FinalizeMessage | KeepaliveMessage | StopMessage] = TypeAdapter(
    ClientMessage
)


# -- WebSocket: server to client ----------------------------------------------------------------------
class ReadyMessage(_Model):
    type: Literal["ready"] = "ready"
    session_id: str
    model: str
    sample_rate: int


class PartialMessage(_Model):
    """The open turn so far; a later partial or the final turn with the same turn_id replaces it."""

    type: Literal["partial"] = "partial"
    turn_id: str
    channel: int
    speaker: str
    start: float
    text: str


class TurnMessage(Turn):
    """A final turn (the fields of section 4)."""

    type: Literal["turn"] = "turn"

    @classmethod
    def of(cls, turn: Turn) -> TurnMessage:
        return cls(**turn.model_dump())

    def to_turn(self) -> Turn:
        return Turn(**self.model_dump(exclude={"type"}))


class ErrorMessage(_Model):
    type: Literal["error"] = "error"
    code: str
    message: str


class Relabel(_Model):
    turn_id: str
    speaker: str = Field(description="the turn's new meeting-wide speaker label")


class RelabelMessage(_Model):
    """Sent only to a client that asked for it (``"relabel": true`` in start): final turns already sent whose
    speaker label a revision changed since it was last given. During the stream after a revision, and once more just
    before ``end`` if the end-of-stream revision changed anything (protocol notes: v1.2)."""

    type: Literal["relabel"] = "relabel"
    turns: list[Relabel]


class EndMessage(_Model):
    type: Literal["end"] = "end"
    duration: float = Field(description="seconds of audio received")
    turns: int = Field(description="final turns sent")


ServerMessage = Annotated[
    ReadyMessage | PartialMessage | TurnMessage | RelabelMessage | ErrorMessage | EndMessage,
    Field(discriminator="type"),
]
server_message_adapter: TypeAdapter[
    ReadyMessage | PartialMessage | TurnMessage | RelabelMessage | ErrorMessage | EndMessage
] = TypeAdapter(ServerMessage)


# -- REST ---------------------------------------------------------------------------------------------
class ErrorBody(_Model):
    code: str
    message: str


class ErrorResponse(_Model):
    """Every REST error: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorBody

    @classmethod
    def of(cls, code: str, message: str) -> ErrorResponse:
        return cls(error=ErrorBody(code=code, message=message))


class ModelInfo(_Model):
    id: str
    sample_rate: int = Field(description="Hz the model works at; any input rate is resampled")
    chunk_seconds: float = Field(description="audio per streaming decode step")
    channels: int = 2


class ModelList(_Model):
    models: list[ModelInfo]


class Health(_Model):
    status: Literal["ok", "loading"]
