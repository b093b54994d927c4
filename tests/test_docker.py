"""The container image (docker/Dockerfile), built and run with rootful podman through the project's container
sandbox (../shared/tools/container-sandbox.sh): /healthz and /readyz answer, a WAV streamed over WebSocket
with the SDK gives a non-trivial transcript equal to the same server's REST transcript, the HEALTHCHECK
passes, the server runs as a non-root user. Uses the bundled model when model/pretrained/ has one, else the
random test model (STS_MODEL=random-tiny).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clients.sdk import BatchClient, StsError, stream_transcribe
from service.config import RANDOM_TINY
from tests.lively import SR, burst_audio

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/sts-transcribe:test"
BUNDLED = ROOT / "model" / "pretrained" / "model.safetensors"
BUILD_TIMEOUT = 1800  # s: a first build installs torch (later builds reuse the cached layers)

pytestmark = pytest.mark.slow


def _sandbox_script() -> Path | None:
    for p in (os.environ.get("CONTAINER_SANDBOX_SETUP"), ROOT.parent / "shared/tools/container-sandbox.sh"):
        if p and Path(p).is_file():
            return Path(p)
    return None


@pytest.fixture(scope="module")
def sandbox_env() -> Path:
    """Set the podman sandbox up (idempotent); the path of its env.sh."""
    if os.geteuid() != 0:
        pytest.skip("podman in the container sandbox needs root (CI runs as root)")
    script = _sandbox_script()
    if script is None:
        pytest.skip("no ../shared/tools/container-sandbox.sh beside the repository (nor $CONTAINER_SANDBOX_SETUP)")
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"container sandbox set-up failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    env = Path(os.environ.get("CONTAINER_SANDBOX", "/tmp/container-sandbox")) / "env.sh"
    assert env.is_file(), r.stdout
    return env


def podman(env: Path, *args: str, flags: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``podman SUBCOMMAND [$BUILD_FLAGS|$RUN_FLAGS] args`` with the sandbox's configuration."""
    script = f'source "$1"; shift; sub="$1"; shift; exec podman "$sub" {flags} "$@"'
    return subprocess.run(["bash", "-c", script, "podman", str(env), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)  # fmt: skip


@pytest.fixture(scope="module")
def image(sandbox_env: Path) -> str:
    began = time.monotonic()
    r = podman(sandbox_env, "build", "--format", "docker", "-f", "docker/Dockerfile", "-t", IMAGE, ".",
               flags="$BUILD_FLAGS", timeout=BUILD_TIMEOUT)  # fmt: skip
    assert r.returncode == 0, f"podman build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    size = podman(sandbox_env, "image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip()
    print(f"\nimage {IMAGE}: built in {time.monotonic() - began:.0f} s, {int(size or 0) / 1e6:.0f} MB")
    return IMAGE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def container(sandbox_env: Path, image: str) -> Iterator[tuple[str, str]]:
    """A running container (host network); yields (name, base URL)."""
    name = f"sts-test-{secrets.token_hex(4)}"
    port = _free_port()
    env = ["-e", f"STS_PORT={port}", "-e", "STS_MAX_STREAMS=4"]
    if not BUNDLED.is_file():
        env += ["-e", f"STS_MODEL={RANDOM_TINY}"]
    r = podman(sandbox_env, "run", "-d", "--name", name, *env, image, flags="$RUN_FLAGS")
    assert r.returncode == 0, r.stderr
    base = f"http://127.0.0.1:{port}"
    try:
        client = BatchClient(base, timeout=5)
        deadline = time.monotonic() + 180
        while True:
            try:
                if client.health().status == "ok" and client.ready():
                    break
            except StsError:
                pass
            state = podman(sandbox_env, "inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            if state not in ("running", "created") or time.monotonic() > deadline:
                logs = podman(sandbox_env, "logs", name)
                pytest.fail(f"container {state}, not ready:\n{logs.stdout[-3000:]}\n{logs.stderr[-3000:]}")
            time.sleep(1)
        yield name, base
    finally:
        podman(sandbox_env, "rm", "-f", "-t", "5", name, timeout=60)


def _speech_or_bursts(tmp: Path) -> Path:
    """Two synthetic voices (espeak-ng) when the bundled model is in use, else the lively test bursts."""
    wav = tmp / "container.wav"
    espeak = shutil.which("espeak-ng")
    if BUNDLED.is_file() and espeak:
        parts = []
        for voice, text in (("en-us", "good morning everyone let us look at the numbers for this week"),
                            ("en-gb", "thank you the sales went up again and we hired two new people")):  # fmt: skip
            out = tmp / f"{voice}.wav"
            subprocess.run([espeak, "-v", voice, "-w", str(out), text], check=True, timeout=60)
            x, rate = sf.read(out, dtype="float32")
            import soxr

            parts += [soxr.resample(x, rate, SR).astype(np.float32), np.zeros(SR // 2, np.float32)]
        sf.write(wav, np.concatenate([np.zeros(SR // 2, np.float32), *parts]), SR, subtype="PCM_16")
    else:
        sf.write(wav, burst_audio(10.0, seed=5)[0], SR, subtype="PCM_16")
    return wav


def test_container_streams_like_rest(sandbox_env: Path, container: tuple[str, str], tmp_path: Path) -> None:
    name, base = container
    wav = _speech_or_bursts(tmp_path)
    samples, rate = sf.read(wav, dtype="float32")

    rest = BatchClient(base).transcribe(wav)
    streamed = stream_transcribe(base, samples, rate, frame_seconds=0.1, timeout=300)
    assert rest.turns, f"no turns from {rest.model}"
    assert sum(len(t.words) for t in rest.turns) >= 2 and any(t.text.strip() for t in rest.turns)
    assert streamed.turns == rest.turns
    assert streamed.duration == pytest.approx(len(samples) / rate, abs=1e-3)
    assert rest.model == (streamed.model or rest.model)

    # the image's own health check, its user, and the browser page
    check = podman(sandbox_env, "healthcheck", "run", name)
    assert check.returncode == 0, check.stdout + check.stderr
    # every file of the bundled model folder (weights, config, LM, lexicon, card) made it into the image
    listing = (
        "import pathlib, model; "
        "print(' '.join(sorted(p.name for p in (pathlib.Path(model.__file__).parent / 'pretrained').iterdir())))"
    )
    shipped = podman(sandbox_env, "exec", name, "python3", "-c", listing)
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout.split() == sorted(p.name for p in BUNDLED.parent.iterdir() if p.is_file()), shipped.stdout
    uid = podman(sandbox_env, "exec", name, "id", "-u")
    assert uid.returncode == 0 and uid.stdout.strip() not in ("", "0"), uid
    import urllib.request

    with urllib.request.urlopen(base + "/", timeout=10) as r:
        assert b"app.js" in r.read()
