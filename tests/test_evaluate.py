"""sts-eval (clients/evaluate.py): scores, timing and word latency on a small simulated set, and the parts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clients.compare import compare, read_transcripts
from clients.evaluate import (
    Decoded,
    RefSession,
    _speakers,
    _word_ends,
    _word_latencies,
    edit_distance,
    load_set,
    main,
    noise_group,
    overlap_bin,
    sweep_score,
)
from model.data.audio import band_limit, vorbis_roundtrip
from service.schemas import Turn
from service.turns import LeakageRules
from tests.bank_fixture import tiny_meeting_set


def test_word_ends_share_the_turn_by_characters() -> None:
    words, ends = _word_ends({"start": 1.0, "end": 3.0, "text": "ab cd"})
    assert words == ["ab", "cd"] and ends == pytest.approx([2.0, 3.0])


def test_edit_distance() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3 and edit_distance("same", "same") == 0


def test_word_latency_of_matched_words_only() -> None:
    ref = {"start": 0.0, "end": 4.0, "text": "one two three four"}
    hyp = Turn(turn_id="t1", channel=0, speaker="S1", start=0.0, end=4.0, text="one too three four", confidence=1)
    lat = _word_latencies(ref, hyp, [1.0, 2.0, 3.5, 4.5])
    _, ends = _word_ends(ref)
    assert lat == pytest.approx([1.0 - ends[0], 3.5 - ends[2], 4.5 - ends[3]])  # "too" is not "two"


@pytest.mark.slow
def test_sts_eval_end_to_end(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    spec, model = tiny_meeting_set(tmp_path_factory, tmp_path, 3, 1, 2)
    main([spec, "--model", model, "--batch", "2", "--out", str(tmp_path / "report")])
    report = json.loads((tmp_path / "report.json").read_text())
    entry = report["sets"][spec]
    assert entry["sessions"] == 3 and entry["turns"]["reference"] > 3
    assert entry["turns"]["found"] > 0  # the lively random model talks
    assert entry["orc_wer"]["words"] > 10 and entry["orc_wer"]["rate"] > 0 and entry["cp_wer"]["rate"] > 0
    assert 0 < entry["rtf"] < 5
    assert entry["cer"]["chars"] > 10 and entry["cer"]["errors"] > 0  # seeds 0-2 draw a single-speaker session
    spk = entry["speakers"]
    assert 0 <= spk["count_accuracy"] <= 1 and spk["der"] > 0  # a random model does not diarize perfectly
    md = (tmp_path / "report.md").read_text()
    assert "| word latency med / p90 (s) |" in md and "| spk count acc. | DER |" in md
    rows = [json.loads(line) for line in (tmp_path / "report.transcripts.jsonl").read_text().splitlines()]
    assert [r["session_id"] for r in rows] == [s.session_id for s in load_set(spec)]
    assert sum(len(r["reference"]) for r in rows) == entry["turns"]["reference"]
    assert sum(len(r["hypothesis"]) for r in rows) == entry["turns"]["found"]
    hyp = next(h for r in rows for h in r["hypothesis"])
    assert set(hyp) == {"speaker", "live_speaker", "channel", "start", "end", "text"} and hyp["end"] >= hyp["start"]
    assert all(r["score_words"] is True for r in rows)
    # clients.compare scores the transcripts again, session by session: the same pooled rates as sts-eval
    rates = {d.metric: d.rate_a for d in compare(read_transcripts(tmp_path / "report.transcripts.jsonl"),
                                                  read_transcripts(tmp_path / "report.transcripts.jsonl"))}  # fmt: skip
    assert rates["orc"] == pytest.approx(100 * entry["orc_wer"]["rate"])
    assert rates["cp"] == pytest.approx(100 * entry["cp_wer"]["rate"])


def _turn(turn_id: str, speaker: str, start: float, end: float, text: str = "x") -> Turn:
    return Turn(turn_id=turn_id, channel=0, speaker=speaker, start=start, end=end, text=text, confidence=1.0)


def test_speaker_count_and_der_of_labelled_turns() -> None:
    """Two reference speakers; the hypothesis finds both turns but gives them one label: count wrong, DER =
    the second speaker's time (confusion) over all speech."""
    audio = np.zeros(16000 * 4, np.float32)
    turns = [
        {"speaker": "A", "start": 0.0, "end": 2.0, "text": "a"},
        {"speaker": "B", "start": 2.0, "end": 3.0, "text": "b"},
    ]
    ref = RefSession("s", audio, 16000, turns, "espeak")
    one = Decoded(turns=[_turn("t0", "S1", 0.0, 2.0), _turn("t1", "S1", 2.0, 3.0)])
    two = Decoded(turns=[_turn("t0", "S1", 0.0, 2.0), _turn("t1", "S2", 2.0, 3.0)])
    assert _speakers([ref], [one]) == pytest.approx({"count_accuracy": 0.0, "der": 1 / 3})
    assert _speakers([ref], [two]) == pytest.approx({"count_accuracy": 1.0, "der": 0.0})


def test_overlap_bins() -> None:
    assert [overlap_bin(x) for x in (0.0, 0.09, 0.1, 0.2, 0.25, 0.4, 1.0)] == [
        "overlap 0-10%", "overlap 0-10%", "overlap 10-25%", "overlap 10-25%", "overlap 25-100%", "overlap 25-100%",
        "overlap 25-100%"]  # fmt: skip


def test_noise_groups() -> None:
    simulated = {"voices": {"S1": "pico:en-GB:p1.35:s1.00"}, "overlap_ratio": 0.0}
    assert noise_group(simulated) == "no added noise"
    assert noise_group({**simulated, "floor": "pink", "snr_db": 41.0}) == "no added noise"
    assert noise_group({**simulated, "noise": "white", "snr_db": 7.5}) == "noise SNR < 15 dB"
    assert noise_group({**simulated, "noise": "babble", "snr_db": 15.0}) == "noise SNR >= 15 dB"
    assert noise_group({"subset": "phone"}) is None  # a real recording: no group


def test_turn_bonus_sweep(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    spec, model = tiny_meeting_set(tmp_path_factory, tmp_path, 2)
    main([spec, "--model", model, "--sweep", "turn_bonus=-1e4,0,2", "--out", str(tmp_path / "sw")])
    sweep = json.loads((tmp_path / "sw.json").read_text())
    found = {b: r["sets"][spec]["turns"]["found"] for b, r in sweep["reports"].items()}
    assert found["turn_bonus=-10000"] <= 4  # no turn tokens: at most one implicit turn per channel
    assert found["turn_bonus=2"] > found["turn_bonus=-10000"]
    best = min(sweep["reports"], key=lambda b: sweep_score(sweep["reports"][b]))
    assert sweep["best"] == {"turn_bonus": float(best.split("=")[1])}
    assert f"best: turn bonus {sweep['best']['turn_bonus']:g}" in (tmp_path / "sw.md").read_text()


def spy(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, record: Callable[..., object]) -> None:
    """Replace ``module.name`` by a wrapper that calls ``record`` with the same arguments first."""
    original = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: record(*a, **k) or original(*a, **k))


def test_label_sweep_decodes_once_and_moves_the_labels(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clients.evaluate as evaluate

    spec, model = tiny_meeting_set(tmp_path_factory, tmp_path, 2)
    calls = []
    spy(monkeypatch, evaluate, "recognize_sessions", lambda *a, **k: calls.append(1))
    # threshold: the cosine a new speaker scores; -1 never opens a second one, 1 opens one for every turn
    # (merges off, during the stream too: the turns left are of one voice and never overlap)
    main([spec, "--model", model, "--sweep-labels", "threshold=-1,1", "--sweep-labels", "min_new_seconds=0",
          "--sweep-labels", "merge_threshold=2", "--sweep-labels", "live_merge_threshold=2",
          "--out", str(tmp_path / "sw")])  # fmt: skip
    assert len(calls) == 1  # one decode for every labelling
    sweep = json.loads((tmp_path / "sw.json").read_text())
    reports = sweep["reports"]
    keys = (f"threshold={t},min_new_seconds=0,merge_threshold=2,live_merge_threshold=2" for t in (-1, 1))
    few, many = (reports[key]["sets"][spec] for key in keys)
    assert few["turns"] == many["turns"] and few["orc_wer"] == many["orc_wer"]  # same words and turns
    assert few["turns"]["found"] > 2  # the lively random model opens turns to label
    assert few["cp_wer"]["rate"] != many["cp_wer"]["rate"] or few["speakers"] != many["speakers"]
    assert sweep["best"]["threshold"] in (-1, 1) and "labelling sweep" in (tmp_path / "sw.md").read_text()


def test_oracle_labels_name_each_turn_by_its_main_reference_speaker() -> None:
    from clients.evaluate import oracle_labelled

    turns = [
        {"speaker": "A", "start": 0.0, "end": 2.0, "text": "a"},
        {"speaker": "B", "start": 1.5, "end": 4.0, "text": "b"},
    ]
    ref = RefSession("s", np.zeros(16000 * 5, np.float32), 16000, turns, "espeak")
    hyp = [_turn("t0", "S9", 0.0, 1.8), _turn("t1", "S9", 1.0, 4.0), _turn("t2", "S1", 4.5, 5.0)]
    assert [t.speaker for t in oracle_labelled(ref, hyp)] == ["A", "B", "A"]  # t2 overlaps none: "A" (first)
    assert [t.speaker for t in hyp] == ["S9", "S9", "S1"]  # the input is not changed


def test_best_labels_follow_the_words_where_time_overlap_misleads() -> None:
    from clients.evaluate import _session_cp_errors, best_labelled, oracle_labelled

    turns = [
        {"speaker": "A", "start": 0.0, "end": 2.0, "text": "one two three"},
        {"speaker": "B", "start": 2.5, "end": 4.0, "text": "four five six"},
    ]
    ref = RefSession("s", np.zeros(16000 * 5, np.float32), 16000, turns, "espeak")
    # B's words came out early, in a turn that overlaps A's time most
    hyp = [_turn("t0", "S1", 0.0, 1.0, "one two three"), _turn("t1", "S1", 1.2, 2.6, "four five six")]
    assert [t.speaker for t in oracle_labelled(ref, hyp)] == ["A", "A"]  # cpWER: 3 insertions, 3 deletions
    best = best_labelled(ref, hyp)
    assert best[0].speaker != best[1].speaker  # cpWER maps labels to speakers itself: the split is what counts
    assert _session_cp_errors(ref, best) == 0 and _session_cp_errors(ref, oracle_labelled(ref, hyp)) == 6


def test_count_hint_gives_the_labeller_each_session_speaker_count(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clients.evaluate as evaluate

    spec, model = tiny_meeting_set(tmp_path_factory, tmp_path, 1)
    (session,) = evaluate.load_set(spec)
    speakers = len({t["speaker"] for t in session.turns})
    hints = []
    make = evaluate.make_labeller
    monkeypatch.setattr(evaluate, "make_labeller", lambda e, max_speakers=None, **k: hints.append(max_speakers)
                        or make(e, max_speakers=max_speakers, **k))  # fmt: skip
    main([spec, "--model", model, "--count-hint", "--out", str(tmp_path / "h")])
    main([spec, "--model", model, "--out", str(tmp_path / "n")])
    assert hints == [speakers, None]
    assert "max_speakers hint" in (tmp_path / "h.md").read_text()


@pytest.mark.slow
def test_lexicon_option_names_the_repair_in_the_report(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from model.lexicon import Lexicon

    spec, model = tiny_meeting_set(tmp_path_factory, tmp_path, 2, 1, 2)
    Lexicon.build(["good morning everyone", "the numbers for this week"]).save(tmp_path / "lex")
    main([spec, "--model", model, "--lexicon", str(tmp_path / "lex"), "--out", str(tmp_path / "with")])
    main([spec, "--model", model, "--lexicon", "none", "--out", str(tmp_path / "without")])
    assert "lexicon repair (8 words)" in (tmp_path / "with.md").read_text().splitlines()[0]
    assert "lexicon" not in (tmp_path / "without.md").read_text().splitlines()[0]
    assert "lexicon repair" in json.loads((tmp_path / "with.json").read_text())["search"]


@pytest.mark.slow
def test_noise_gain_band_and_codec_change_the_audio_the_recognizer_hears(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clients import evaluate

    spec, model = tiny_meeting_set(tmp_path_factory, tmp_path, 1)
    (session,) = evaluate.load_set(spec)
    heard = []
    spy(monkeypatch, evaluate, "recognize_sessions", lambda r, sessions, *a: heard.append(sessions[0].audio))
    main([spec, "--model", model, "--gain", "0.1", "--out", str(tmp_path / "quiet")])
    np.testing.assert_allclose(heard[0], 0.1 * session.audio, rtol=1e-6)
    assert "audio scaled by 0.1" in (tmp_path / "quiet.md").read_text().splitlines()[0]
    assert json.loads((tmp_path / "quiet.json").read_text())["gain"] == 0.1
    main([spec, "--model", model, "--codec", "0.5", "--out", str(tmp_path / "lossy")])
    np.testing.assert_array_equal(heard[1], vorbis_roundtrip(session.audio, 0.5))
    assert not np.array_equal(heard[1], session.audio)
    assert "stored as Ogg Vorbis at level 0.5" in (tmp_path / "lossy.md").read_text().splitlines()[0]
    assert json.loads((tmp_path / "lossy.json").read_text())["codec"] == 0.5
    main([spec, "--model", model, "--noise", "40", "--out", str(tmp_path / "hiss")])
    hiss = heard[2] - session.audio
    assert 0.9 < float(np.std(hiss)) / (np.abs(session.audio).max() * 10 ** (-40 / 20)) < 1.1
    assert abs(float(np.corrcoef(hiss, session.audio)[0, 1])) < 0.05, "the added noise is independent of the audio"
    main([spec, "--model", model, "--noise", "40"])
    np.testing.assert_array_equal(heard[3], heard[2])  # seeded by the session id
    assert "white noise 40 dB below the peak added" in (tmp_path / "hiss.md").read_text().splitlines()[0]
    assert json.loads((tmp_path / "hiss.json").read_text())["noise"] == 40
    main([spec, "--model", model, "--band", "8000", "--out", str(tmp_path / "phone")])
    np.testing.assert_array_equal(heard[4], band_limit(session.audio, 8000))
    assert not np.allclose(heard[4], session.audio, atol=1e-3)
    assert "band-limited as if sampled at 8000 Hz" in (tmp_path / "phone.md").read_text().splitlines()[0]
    assert json.loads((tmp_path / "phone.json").read_text())["band"] == 8000
    bad_args = (["--gain", "0"], ["--gain", "0.5", "--sweep", "turn_bonus=0,1"], ["--codec", "1.5"],
                ["--codec", "0.5", "--sweep", "turn_bonus=0,1"],
                ["--noise", "40", "--sweep", "turn_bonus=0,1"], ["--band", "500"],
                ["--band", "8000", "--sweep", "turn_bonus=0,1"])  # fmt: skip
    for bad in bad_args:
        with pytest.raises(SystemExit):
            main([spec, "--model", model, *bad])


@pytest.mark.slow
def test_copy_window_reaches_the_turn_assembler(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clients import evaluate

    spec, model = tiny_meeting_set(tmp_path_factory, tmp_path, 1)
    windows = []
    spy(monkeypatch, evaluate, "TurnAssembler", lambda *a, **k: windows.append(k["leakage"].copy_window))
    main([spec, "--model", model, "--copy-window", "0.6", "--out", str(tmp_path / "copies")])
    main([spec, "--model", model, "--copy-window", "0", "--out", str(tmp_path / "kept")])
    main([spec, "--model", model, "--out", str(tmp_path / "default")])
    assert windows == [0.6, 0.0, LeakageRules.copy_window] and LeakageRules.copy_window > 0  # the service's default
    assert "cross-channel copies dropped within 0.6 s" in (tmp_path / "copies.md").read_text().splitlines()[0]
    assert "cross-channel copies kept" in (tmp_path / "kept.md").read_text().splitlines()[0]
    assert "cross-channel" not in (tmp_path / "default.md").read_text().splitlines()[0]
    assert json.loads((tmp_path / "copies.json").read_text())["copy_window"] == 0.6
    for bad in (["--copy-window", "-1"], ["--copy-window", "0.6", "--sweep", "turn_bonus=0,1"]):
        with pytest.raises(SystemExit):
            main([spec, "--model", model, *bad])
