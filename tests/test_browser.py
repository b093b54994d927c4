"""The browser page (service/static/) in a real headless Chromium, against a real server on loopback.

- microphone: Chromium's fake capture device plays the test WAV; the page's AudioWorklet resamples it to
  16 kHz s16le and streams it over WebSocket protocol v1. The fake device starts the file when it opens and
  the worklet a little later, and its audio went through two resamplers, so letters (which the lively model
  draws from the exact encoder output) are not comparable; what is: the turns the page ends with line up, after
  one constant time shift, with the turns of ``POST /v1/transcriptions`` of the same file.
- file: the page's upload shows exactly the REST transcript, and its JSON / SRT downloads equal the service's.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients.sdk import BatchClient
from service.schemas import Transcript

pytest_plugins = ["tests.service_fixtures"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
START_TOLERANCE = 0.16  # s: a page turn starts this close to a REST turn (after the shift)


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing (pip install -e .[dev])")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium chromium-driver; scripts/setup.sh does)")
    return sync_playwright


@pytest.fixture
def browser(tmp_path: Path, meeting_wav: Path) -> Iterator[Any]:
    """A fresh Chromium whose fake microphone plays the meeting WAV once (then silence)."""
    sync_playwright = _playwright()
    wav = tmp_path / "mic.wav"
    shutil.copy(meeting_wav, wav)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"],
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


def _page(context: Any, url: str) -> Any:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("window.sts !== undefined")
    page.errors = errors  # type: ignore[attr-defined]
    return page


def _shown_turns(page: Any) -> list[dict[str, Any]]:
    """The turns as the page shows them."""
    return page.eval_on_selector_all(
        "#turns li",
        """els => els.map(li => ({turn_id: li.dataset.turnId, final: li.dataset.final === "true",
            speaker: li.dataset.speaker, channel: Number(li.dataset.channel), start: Number(li.dataset.start),
            end: li.dataset.end ? Number(li.dataset.end) : null, text: li.querySelector(".text").textContent}))""",
    )


def _download(page: Any, button: str) -> str:
    with page.expect_download() as info:
        page.click(button)
    return Path(info.value.path()).read_text()


def _best_shift(page_starts: list[float], rest_starts: list[float]) -> tuple[float, int]:
    """The shift s (file time = page time + s) that lines up the most page turn starts with REST ones."""
    best = (0.0, -1)
    for p in page_starts:
        for r in rest_starts:
            s = r - p
            hits = sum(any(abs(q + s - x) <= START_TOLERANCE for x in rest_starts) for q in page_starts)
            if hits > best[1]:
                best = (s, hits)
    return best


def test_microphone_stream_shows_the_files_turns(
    make_server: Any, browser: Any, meeting_wav: Path, relabel_t1_early: None
) -> None:
    server = make_server(api_keys="mic-key")  # the page's WebSocket carries ?token=
    rest = BatchClient(server.http, token="mic-key").transcribe(meeting_wav)
    assert len(rest.turns) >= 8
    page = _page(browser, server.http + "/?token=mic-key")
    page.click("#start")
    page.wait_for_selector('#status[data-state="live"]', timeout=20_000)
    # the whole file (12 s) and 1.5 s of the silence after it
    page.wait_for_function("window.sts.secondsSent() >= 13.5", timeout=40_000, polling=200)
    partials_seen = page.evaluate("[...window.sts.session.turns.values()].some(t => !t.final)") or bool(
        page.query_selector("#turns li.partial")
    )
    page.click("#stop")
    page.wait_for_selector('#status[data-state="done"]', timeout=30_000)
    assert page.errors == []  # type: ignore[attr-defined]
    assert page.inner_text("#error") == ""

    shown = _shown_turns(page)
    assert shown and all(t["final"] for t in shown), "every partial was replaced by its final turn"
    assert [t["start"] for t in shown] == sorted(t["start"] for t in shown)
    assert all(re.fullmatch(r"S\d+", t["speaker"]) for t in shown)  # labelled by voice: not comparable
    # t1 was relabelled twice (to S8 during the stream, to S9 at its end): the later one holds
    assert next(t for t in shown if t["turn_id"] == "t1")["speaker"] == "S9"
    assert all(t["text"].strip() for t in shown)
    # the page's transcript (as downloaded) is what it shows
    downloaded = Transcript.model_validate_json(_download(page, "#download-json"))
    assert [(t.turn_id, t.speaker, t.start, t.text) for t in downloaded.turns] == [
        (t["turn_id"], t["speaker"], t["start"], t["text"]) for t in shown
    ]
    assert downloaded.model == rest.model and downloaded.duration >= 13.0
    srt = _download(page, "#download-srt")
    assert srt.count(" --> ") == len(shown)

    # the same turn structure as REST, shifted by the capture's start-up time
    rest_starts = [t.start for t in rest.turns]
    page_starts = [t["start"] for t in shown if t["start"] < 12.0]
    shift, hits = _best_shift(page_starts, rest_starts)
    assert -0.2 <= shift <= 3.0, shift  # the page can only miss the file's beginning
    covered = [t for t in rest.turns if t.start - shift >= 0.3]  # REST turns the page had the audio for
    assert hits >= 0.75 * len(page_starts), (shift, hits, page_starts, rest_starts)
    assert hits >= 0.75 * len(covered), (shift, hits, page_starts, rest_starts)
    # and the turns that line up end together too
    pairs = [(t, r) for t in shown for r in rest.turns if abs(t["start"] + shift - r.start) <= START_TOLERANCE]
    ends = [abs(t["end"] + shift - r.end) <= 2 * START_TOLERANCE for t, r in pairs]
    assert sum(ends) >= 0.75 * len(ends), pairs
    assert partials_seen or len(shown) >= 8


def test_microphone_refused_without_the_key(make_server: Any, browser: Any) -> None:
    server = make_server(api_keys="mic-key")
    page = _page(browser, server.http + "/?token=wrong")
    page.click("#start")
    page.wait_for_selector('#status[data-state="error"]', timeout=20_000)
    assert "unauthorized" in page.inner_text("#error")
    page.wait_for_function("!document.getElementById('start').disabled", timeout=10_000)  # ready to retry
    assert _shown_turns(page) == [] and page.errors == []  # type: ignore[attr-defined]


def test_file_upload_equals_rest(make_server: Any, browser: Any, meeting_wav: Path) -> None:
    srv = make_server(api_keys="browser-key")
    rest_client = BatchClient(srv.http, token="browser-key")
    rest = rest_client.transcribe(meeting_wav)
    page = _page(browser, srv.http + "/?token=browser-key")  # the key field is filled from ?token=

    page.set_input_files("#file", str(meeting_wav))
    page.wait_for_selector('#status[data-state="done"]', timeout=30_000)
    shown = _shown_turns(page)
    assert [(t["turn_id"], t["speaker"], t["start"], t["end"], t["text"]) for t in shown] == [
        (t.turn_id, t.speaker, t.start, t.end, t.text) for t in rest.turns
    ]
    assert json.loads(_download(page, "#download-json")) == json.loads(rest.model_dump_json())
    assert _download(page, "#download-srt") == rest_client.transcribe_raw(meeting_wav, "srt")

    # the max speakers hint goes along
    hinted = rest_client.transcribe(meeting_wav, max_speakers=2)
    page.fill("#max-speakers", "2")
    page.set_input_files("#file", str(meeting_wav))
    page.wait_for_selector('#status[data-state="done"]', timeout=30_000)
    assert [(t["speaker"], t["text"]) for t in _shown_turns(page)] == [(t.speaker, t.text) for t in hinted.turns]

    # a wrong key: the service's error is shown, nothing else
    page.fill("#token", "wrong")
    page.set_input_files("#file", str(meeting_wav))
    page.wait_for_selector('#status[data-state="error"]', timeout=30_000)
    assert "unauthorized" in page.inner_text("#error")
    assert _shown_turns(page) == []
    assert page.errors == []  # type: ignore[attr-defined]


def test_page_is_served(server: Any) -> None:
    import urllib.request

    with urllib.request.urlopen(server.http + "/") as r:
        html = r.read().decode()
    assert "app.js" in html and "Start microphone" in html
    for asset in ("app.js", "pcm-worklet.js", "style.css"):
        with urllib.request.urlopen(f"{server.http}/{asset}") as r:
            assert r.status == 200 and r.read()
