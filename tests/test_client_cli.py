"""The command lines: ``sts-transcribe`` (local and ``--server``) and ``sts-stream``, against real servers."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from clients import stream as stream_cli
from clients import transcribe as transcribe_cli
from clients.local import LocalError, transcribe_path
from clients.sdk import BatchClient
from service.config import RANDOM_TINY
from service.schemas import Transcript
from tests.lively import SR

pytest_plugins = ["tests.service_fixtures"]
BIN = Path(sys.executable).parent  # the console scripts of this environment


@pytest.fixture(scope="module")
def random_server() -> Iterator[Any]:
    """A server with the model that ``--model random-tiny`` loads."""
    from service.app import load_recognizer
    from tests.service_fixtures import TEST_SETTINGS, ServerHandle

    handle = ServerHandle(load_recognizer(RANDOM_TINY), **TEST_SETTINGS)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def rest_transcript(server: Any, meeting_wav: Path) -> Transcript:
    t = BatchClient(server.http).transcribe(meeting_wav)
    assert len(t.turns) >= 8 and all(u.text for u in t.turns)
    return t


def _run(main: Any, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


# -- sts-transcribe -----------------------------------------------------------------------------------
def test_local_path_is_the_rest_path(lively: Any, meeting_wav: Path, rest_transcript: Transcript) -> None:
    """clients.local decodes through the service's own REST code: the same transcript, field for field."""
    assert transcribe_path(meeting_wav, lively) == rest_transcript


def test_local_and_server_output_agree(
    random_server: Any, meeting_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a stereo 44.1 kHz FLAC: downmixed and handled at its own rate on both paths
    audio, _ = sf.read(meeting_wav, dtype="float32")
    stereo = tmp_path / "two.channels.flac"
    sf.write(stereo, np.stack([audio, 0.5 * audio], axis=1), 44100)
    for fmt in ("json", "srt", "rttm", "seglst"):
        status, local, err = _run(transcribe_cli.main, [str(stereo), "--model", RANDOM_TINY, "-f", fmt], capsys)
        assert status == 0, err
        status, remote, err = _run(transcribe_cli.main, [str(stereo), "--server", random_server.http, "-f", fmt],
                                   capsys)  # fmt: skip
        assert status == 0, err
        assert local == remote
    hint = ["--max-speakers", "2", "-f", "rttm"]
    local = _run(transcribe_cli.main, [str(stereo), "--model", RANDOM_TINY, *hint], capsys)[1]
    assert local == _run(transcribe_cli.main, [str(stereo), "--server", random_server.http, *hint], capsys)[1]
    t = Transcript.model_validate_json(_run(transcribe_cli.main, [str(stereo), "--model", RANDOM_TINY], capsys)[1])
    assert t.turns and t.model.startswith("sts-tiny") and t.duration == pytest.approx(len(audio) / 44100, abs=1e-3)
    assert "SPEAKER two 1 " in _run(transcribe_cli.main, [str(stereo), "--model", RANDOM_TINY, "-f", "rttm"], capsys)[1]


def test_transcribe_errors(random_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "notes.wav"
    garbage.write_bytes(b"this is not audio, whatever its name says\n" * 10)
    damaged = tmp_path / "cut.wav"
    damaged.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for where in (["--model", RANDOM_TINY], ["--server", random_server.http]):
        status, out, err = _run(transcribe_cli.main, [str(tmp_path / "absent.wav"), *where], capsys)
        assert status == 1 and out == "" and "no such file" in err
        status, out, err = _run(transcribe_cli.main, [str(garbage), *where], capsys)
        assert status == 1 and out == "" and "not a supported audio file" in err, err
        status, out, err = _run(transcribe_cli.main, [str(damaged), *where], capsys)
        assert status == 1 and out == "" and "corrupt_audio" in err, err
        status, out, err = _run(transcribe_cli.main, [str(empty), *where], capsys)
        assert status == 1 and out == "" and "empty" in err, err
    status, _, err = _run(transcribe_cli.main, [str(garbage), "--model", str(tmp_path / "nomodel")], capsys)
    assert status == 3 and "cannot load the model" in err
    status, _, err = _run(transcribe_cli.main, [str(garbage), "--server", "http://127.0.0.1:9"], capsys)
    assert status == 3 and "cannot reach" in err
    with socket.socket() as mute:  # a server that accepts and never answers
        mute.bind(("127.0.0.1", 0))
        mute.listen()
        url = f"http://127.0.0.1:{mute.getsockname()[1]}"
        status, _, err = _run(transcribe_cli.main, [str(garbage), "--server", url, "--timeout", "0.5"], capsys)
    assert status == 3 and "no answer" in err, err
    status, _, err = _run(transcribe_cli.main, [str(garbage), "--server", url, "--timeout", "0"], capsys)
    assert status == 2 and "--timeout" in err
    with pytest.raises(SystemExit) as bad_format:
        transcribe_cli.main([str(garbage), "--format", "docx"])
    assert bad_format.value.code == 2
    with pytest.raises(LocalError) as missing:
        transcribe_path(tmp_path / "absent.wav", object())  # type: ignore[arg-type]  # before the model is used
    assert missing.value.code == "missing_file"


def test_console_script(random_server: Any, meeting_wav: Path) -> None:
    exe = BIN / "sts-transcribe"
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (pip install -e . installs it)")
    r = subprocess.run([str(exe), str(meeting_wav), "--server", random_server.http, "--format", "txt"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and all(re.fullmatch(r"S\d+: \S.*", line) for line in lines), lines


# -- sts-stream ---------------------------------------------------------------------------------------
def _final_texts(transcript: Transcript) -> list[str]:
    """The words of every final turn, sorted. (The captions show the labels as given live; REST gives them as
    revised at the end of the stream, so only the words are compared; ``-o`` checks the revised labels.)"""
    return sorted(u.text for u in transcript.turns)


def _caption_texts(lines: list[str]) -> list[str]:
    """The words of caption lines "[start - end] S1: words", sorted; each line names a speaker."""
    said = [line.split("] ", 1)[1] for line in lines]
    assert all(re.fullmatch(r"S\d+: .*", x) for x in said), said
    return sorted(x.split(": ", 1)[1] for x in said)


def _stream(argv: list[str], tty: bool = False) -> tuple[int, str, str]:
    class Out(io.StringIO):
        def isatty(self) -> bool:
            return tty

    out, err = Out(), io.StringIO()
    status = asyncio.run(stream_cli.run(stream_cli.build_parser().parse_args(argv), out, err))
    return status, out.getvalue(), err.getvalue()


def test_stream_file_piped(server: Any, meeting_wav: Path, rest_transcript: Transcript, tmp_path: Path) -> None:
    out_file = tmp_path / "live.json"
    status, out, err = _stream([str(meeting_wav), "--url", server.ws, "--fast", "-o", str(out_file)])
    assert status == 0, err
    assert "\r" not in out and "\x1b" not in out  # piped: plain final lines only
    lines = out.splitlines()
    assert len(lines) == len(rest_transcript.turns)
    assert _caption_texts(lines) == _final_texts(rest_transcript)
    assert "12.00 s of audio" in err
    assert Transcript.model_validate_json(out_file.read_text()).turns == rest_transcript.turns


def test_stream_reports_a_relabel_and_writes_it(
    make_server: Any, meeting_wav: Path, tmp_path: Path, relabel_t1: None
) -> None:
    server = make_server()
    out_file = tmp_path / "live.json"
    status, out, err = _stream([str(meeting_wav), "--url", server.ws, "--fast", "-o", str(out_file)])
    assert status == 0, err
    assert "speaker labels revised: t1 -> S9" in err
    assert "S9" not in out  # the captions were printed live, before the revision
    turns = Transcript.model_validate_json(out_file.read_text()).turns
    assert next(t for t in turns if t.turn_id == "t1").speaker == "S9"


def test_stream_tty_partials_in_place(server: Any, meeting_wav: Path, rest_transcript: Transcript) -> None:
    status, out, err = _stream([str(meeting_wav), "--url", server.ws, "--fast"], tty=True)
    assert status == 0, err
    assert "\r\x1b[2K" in out  # the live line is redrawn in place
    finals = [line.split("\r\x1b[2K")[-1] for line in out.split("\n")[:-1]]
    assert _caption_texts(finals) == _final_texts(rest_transcript)


def test_stream_real_time_pace(server: Any, tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(int(1.5 * SR), np.float32), SR)
    import time

    began = time.monotonic()
    status, _, err = _stream([str(short), "--url", server.ws])
    assert status == 0, err
    assert time.monotonic() - began >= 1.3  # not faster than real time


def test_stream_stdin_console_script(server: Any, meeting_wav: Path, rest_transcript: Transcript) -> None:
    exe = BIN / "sts-stream"
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (pip install -e . installs it)")
    pcm = sf.read(meeting_wav, dtype="int16")[0].astype("<i2").tobytes()
    env = {**os.environ, "STS_TOKEN": ""}
    r = subprocess.run([str(exe), "-", "--url", server.ws], input=pcm, capture_output=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert _caption_texts(lines) == _final_texts(rest_transcript)


def test_stream_errors(server: Any, make_server: Any, meeting_wav: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "x.wav"
    garbage.write_bytes(b"not audio")
    status, _, err = _stream([str(garbage), "--url", server.ws])
    assert status == 1 and "cannot read" in err
    status, _, err = _stream([str(meeting_wav), "--url", "ws://127.0.0.1:9/v1/stream", "--fast"])
    assert status == 1 and "cannot connect" in err
    locked = make_server(api_keys="secret")
    status, _, err = _stream([str(meeting_wav), "--url", locked.ws, "--fast"])
    assert status == 1 and "unauthorized" in err
    status, _, err = _stream([str(meeting_wav), "--url", locked.ws, "--fast", "--token", "secret"])
    assert status == 0, err
    # a file that fails part-way: the audio before the damage is still transcribed, then exit 1 with the reason
    samples, rate = sf.read(meeting_wav, dtype="float32")
    flac = tmp_path / "whole.flac"
    sf.write(flac, samples, rate, format="FLAC")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(flac.read_bytes()[: flac.stat().st_size * 6 // 10])
    status, out, err = _stream([str(cut), "--url", server.ws, "--fast"])
    assert status == 1 and "failed part-way" in err and "s of audio" in err, err
    assert out.strip(), "the turns before the damage came out"


def test_stream_help_and_defaults() -> None:
    with pytest.raises(SystemExit) as e:
        stream_cli.main(["--help"])
    assert e.value.code == 0
    parsed = json.loads(json.dumps(vars(stream_cli.build_parser().parse_args(["-"]))))
    assert parsed["url"] == "ws://127.0.0.1:8000/v1/stream" and parsed["rate"] == 16000
