"""Fixtures for the service tests (a pytest plugin: `pytest_plugins = ["tests.service_fixtures"]`): a real
uvicorn server on loopback, in a thread, with a lively random model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.lively import SR, burst_audio, lively_recognizer


class ServerHandle:
    """A uvicorn server running ``create_app(settings, recognizer)`` in a background thread."""

    def __init__(self, recognizer: Any, sndbuf: int | None = None, **settings: Any) -> None:
        import uvicorn

        from service.app import create_app
        from service.config import Settings

        # our own listening socket: accepted connections inherit its SO_SNDBUF (small = a slow reader's
        # backlog reaches the app quickly)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sndbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.settings = Settings(host="127.0.0.1", port=self.port, **settings)
        self.app = create_app(self.settings, recognizer=recognizer)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                ws_max_size=2 * self.settings.max_frame_bytes, lifespan="on")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="session")
def lively() -> Any:
    return lively_recognizer(seed=0)


@pytest.fixture(scope="session")
def meeting_audio() -> tuple[np.ndarray, list[tuple[float, float]]]:
    samples, bursts = burst_audio(12.0, seed=3)
    # on the 16-bit grid, so the WAV file and the s16le WebSocket frames carry exactly the same samples
    return (np.clip(np.round(samples * 32768), -32768, 32767) / 32768).astype(np.float32), bursts


@pytest.fixture(scope="session")
def meeting_wav(tmp_path_factory: pytest.TempPathFactory, meeting_audio: Any) -> Path:
    path = tmp_path_factory.mktemp("audio") / "meeting.wav"
    sf.write(path, np.round(meeting_audio[0] * 32768).astype(np.int16), SR, subtype="PCM_16")
    return path


TEST_SETTINGS: dict[str, Any] = {
    "max_streams": 6,
    "idle_timeout": 5.0,
    "send_timeout": 3.0,
    "max_frame_bytes": 256 << 10,
    "max_upload_bytes": 8 << 20,
    "max_upload_seconds": 60.0,
}


@pytest.fixture(scope="module")
def server(lively: Any) -> Iterator[ServerHandle]:
    handle = ServerHandle(lively, **TEST_SETTINGS)
    yield handle
    handle.stop()


@pytest.fixture
def make_server(lively: Any) -> Iterator[Any]:
    """Start servers with other settings; all stop at the end of the test."""
    handles: list[ServerHandle] = []

    def make(sndbuf: int | None = None, **overrides: Any) -> ServerHandle:
        h = ServerHandle(lively, sndbuf=sndbuf, **{**TEST_SETTINGS, **overrides})
        handles.append(h)
        return h

    yield make
    for h in handles:
        h.stop()


@pytest.fixture
def relabel_t1(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's labellers (WebSocket and REST), with an end-of-stream revision that moves turn t1 to "S9"
    (the lively model's turns never make the real revision change anything)."""
    import service.ws

    make_labeller = service.ws.make_labeller

    def revising(*args: Any) -> Any:
        labeller = make_labeller(*args)
        labeller.relabels = lambda final=False: {"t1": "S9"} if final else {}
        return labeller

    monkeypatch.setattr("service.ws.make_labeller", revising)
    monkeypatch.setattr("service.rest.make_labeller", revising)


@pytest.fixture
def relabel_t1_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's labellers, revising during the stream: once turn t1 has been given, the next call moves it
    to "S8"; the end-of-stream revision then moves it to "S9"."""
    import service.ws

    make_labeller = service.ws.make_labeller

    def revising(*args: Any) -> Any:
        labeller = make_labeller(*args)
        moved: list[str] = []

        def relabels(final: bool = False) -> dict[str, str]:
            if final:
                return {"t1": "S9"}
            if "t1" in labeller._given and not moved:
                moved.append("t1")
                return {"t1": "S8"}
            return {}

        labeller.relabels = relabels
        return labeller

    monkeypatch.setattr("service.ws.make_labeller", revising)
    monkeypatch.setattr("service.rest.make_labeller", revising)
