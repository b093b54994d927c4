"""clients.compare: paired comparison of two sts-eval decodes (rates as sts-eval scores them, bootstrap interval)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clients.compare import compare, main, paired_bootstrap, read_transcripts


def _turn(speaker: str, start: float, end: float, text: str, channel: int | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"speaker": speaker, "start": start, "end": end, "text": text}
    if channel is not None:
        t["channel"] = channel
    return t


def _row(set_: str, sid: str, ref: list[dict[str, Any]], hyp: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"set": set_, "session_id": sid, "family": "x", "reference": ref, "hypothesis": hyp, **extra}


SINGLE_REF = ["the cat sat on the mat", "a dog ran far away", "it rained for a week", "acting is an art"]


def _single(wrong: dict[int, str]) -> list[dict[str, Any]]:
    """Four one-speaker sessions, hypothesis = reference except the sessions in ``wrong``."""
    return [_row("d/single", f"s{i}", [_turn("S1", 0, 2, text)], [_turn("A", 0, 2, wrong.get(i, text), 0)])
            for i, text in enumerate(SINGLE_REF)]  # fmt: skip


def _meet(merged: bool) -> list[dict[str, Any]]:
    """One two-speaker session decoded word-perfect on two channels; ``merged`` gives every turn one label (the
    labeller missed the second speaker: cpWER suffers, ORC-WER does not)."""
    ref = [_turn("S1", 0, 2, "hello there friend"), _turn("S2", 1, 3, "good morning to you"), _turn("S2", 4, 5, "yes")]
    names = ("A", "A") if merged else ("A", "B")
    hyp = [_turn(names[0], 0, 2, "hello there friend", 0), _turn(names[1], 1, 3, "good morning to you", 1),
           _turn(names[1], 4, 5, "yes", 1)]  # fmt: skip
    return [_row("d/meet2", "m0", ref, hyp)]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_identical_decodes_differ_by_nothing(tmp_path: Path) -> None:
    rows = _single({1: "a dog ran"}) + _meet(False)
    a = read_transcripts(_write(tmp_path / "a.jsonl", rows))
    diffs = compare(a, a)
    assert [(d.set, d.metric) for d in diffs] == [("d/single", "orc"), ("d/meet2", "orc"), ("d/meet2", "cp")]
    for d in diffs:
        assert d.diff == 0 and d.low == 0 and d.high == 0 and d.better == d.worse == 0


def test_rates_and_interval_of_a_worse_model(tmp_path: Path) -> None:
    """B misses two words in one session and substitutes one in another: 3 errors in 20 words, pooled."""
    a = read_transcripts(_write(tmp_path / "a.jsonl", _single({})))
    b = read_transcripts(_write(tmp_path / "b.jsonl", _single({1: "a dog ran", 3: "acting is an aunt"})))
    (d,) = compare(a, b, resamples=500)
    assert (d.sessions, d.words, d.better, d.worse) == (4, 20, 0, 2)
    assert d.rate_a == 0 and d.rate_b == pytest.approx(100 * 3 / 20)
    assert 0 <= d.low <= d.diff <= d.high  # B is never better in any resample
    (back,) = compare(b, a, resamples=500)
    assert back.diff == pytest.approx(-d.diff) and (back.better, back.worse) == (2, 0)


def test_speaker_labels_move_cpwer_not_orcwer(tmp_path: Path) -> None:
    a = read_transcripts(_write(tmp_path / "a.jsonl", _meet(False)))
    b = read_transcripts(_write(tmp_path / "b.jsonl", _meet(True)))
    orc, cp = compare(a, b)
    assert orc.metric == "orc" and orc.diff == 0 and orc.rate_a == 0
    assert cp.metric == "cp" and cp.rate_a == 0 and cp.diff >= 100 * 3 / 8  # the shorter speaker's words lost


def test_sessions_without_a_transcript_do_not_count(tmp_path: Path) -> None:
    """score_words false (or, in files written before the key existed, a reference without words) leaves a
    session out, as sts-eval does."""
    extra = [
        _row("d/single", "nowords", [_turn("S1", 0, 2, "")], [_turn("A", 0, 2, "many words here", 0)]),
        _row("d/single", "flagged", [_turn("S1", 0, 2, "a b")], [_turn("A", 0, 2, "x", 0)], score_words=False),
    ]
    a = read_transcripts(_write(tmp_path / "a.jsonl", _single({}) + extra))
    (d,) = compare(a, a)
    assert (d.sessions, d.words) == (4, 20)


def test_mismatched_sets_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path / "a.jsonl", _single({}))
    b = _write(tmp_path / "b.jsonl", _single({})[:3])
    with pytest.raises(ValueError, match="different sessions"):
        compare(read_transcripts(a), read_transcripts(b))
    with pytest.raises(SystemExit, match="different sessions"):
        main([str(a), str(b)])
    other = _single({})
    other[0]["reference"][0]["text"] = "the cat sat"
    with pytest.raises(ValueError, match="different references"):
        compare(read_transcripts(a), read_transcripts(_write(tmp_path / "o.jsonl", other)))
    with pytest.raises(SystemExit, match="not in both"):
        main([str(a), str(a), "--sets", "d/nothing"])
    main([str(a), str(_write(tmp_path / "c.jsonl", _single({0: "the cat"})))])
    out = capsys.readouterr().out
    assert "| d/single | WER / ORC-WER | 4 | 20 | 0.0% | 20.0% | +20.0 [" in out


def test_bootstrap_interval_narrows_with_more_sessions() -> None:
    rng = np.random.default_rng(1)
    words = rng.integers(5, 30, size=400)
    ea = rng.binomial(words, 0.5)
    eb = rng.binomial(words, 0.45)
    wide = paired_bootstrap(ea[:20], eb[:20], words[:20])
    narrow = paired_bootstrap(ea, eb, words)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert narrow[0] < 100 * (eb.sum() - ea.sum()) / words.sum() < narrow[1]


def test_pooled_sets_sum_their_errors_and_resample_within_each_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pool's rate is its sets' errors over their words; its interval resamples each set's own sessions."""
    rows_a = _single({}) + _meet(False)
    rows_b = _single({1: "a dog ran"}) + _meet(True)
    a = read_transcripts(_write(tmp_path / "a.jsonl", rows_a))
    b = read_transcripts(_write(tmp_path / "b.jsonl", rows_b))
    alone = {(d.set, d.metric): d for d in compare(a, b, resamples=500)}
    diffs = compare(a, b, resamples=500, pools={"all": ["d/single", "d/meet2"]})
    assert [(d.set, d.metric) for d in diffs[:3]] == list(alone)  # the sets' own rows come first, unchanged
    orc, cp = diffs[3:]
    assert (orc.set, orc.metric, cp.set, cp.metric) == ("all (2 sets)", "orc", "all (1 set)", "cp")
    assert (orc.sessions, orc.words) == (5, 20 + 8)
    assert orc.rate_b == pytest.approx(100 * 2 / 28) and orc.rate_a == 0  # two words missed, labels do not count
    meet = alone["d/meet2", "cp"]
    assert (cp.rate_a, cp.rate_b, cp.low, cp.high) == (meet.rate_a, meet.rate_b, meet.low, meet.high)
    assert 0 <= orc.low <= orc.diff <= orc.high and orc.worse == 1 and orc.better == 0
    # only the pooled sets named in --sets are printed on their own; the pool still takes all its members
    only = compare(a, b, sets=["d/meet2"], resamples=500, pools={"all": ["d/single", "d/meet2"]})
    assert [d.set for d in only] == ["d/meet2", "d/meet2", "all (2 sets)", "all (1 set)"]
    with pytest.raises(ValueError, match="not in both"):
        compare(a, b, pools={"p": ["d/single", "d/none"]})
    main([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--pool", "all=d/single,d/meet2"])
    assert "| all (2 sets) | WER / ORC-WER | 5 | 28 | 0.0% | 7.1% |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--pool", "nosets"])
