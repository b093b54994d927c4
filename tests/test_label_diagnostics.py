"""The labelling diagnostics: the EER measure, the one-voice test of a turn, and a run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clients.evaluate import RefSession
from clients.label_diagnostics import equal_error_rate, main, one_voice
from service.schemas import Turn, Word
from tests.bank_fixture import tiny_meeting_set


def test_equal_error_rate() -> None:
    assert equal_error_rate(np.array([0.8, 0.9]), np.array([0.1, 0.2, 0.3])) == 0.0  # separated
    assert equal_error_rate(np.array([0.1, 0.2]), np.array([0.8, 0.9])) == 1.0  # the wrong way round
    # one same pair scores below one different pair: at best one error in each kind's list
    assert equal_error_rate(np.array([0.2, 0.7, 0.8, 0.9]), np.array([0.1, 0.3, 0.4, 0.75])) == pytest.approx(0.25)
    assert np.isnan(equal_error_rate(np.array([0.5]), np.array([])))


def test_one_voice_follows_the_reference_speaker_under_each_word() -> None:
    ref = RefSession("s", np.zeros(16000 * 6, np.float32), 16000, [
        {"speaker": "A", "start": 0.0, "end": 2.0, "text": "a b"},
        {"speaker": "B", "start": 3.0, "end": 5.0, "text": "c d"},
    ], "espeak")  # fmt: skip

    def turn(*spans: tuple[float, float]) -> Turn:
        words = [Word(word="w", start=a, end=b, confidence=1.0) for a, b in spans]
        return Turn(turn_id="t", channel=0, speaker="S1", start=spans[0][0], end=spans[-1][1], text="w",
                    confidence=1.0, words=words)  # fmt: skip

    assert one_voice(ref, turn((0.2, 0.5), (1.0, 1.5), (2.3, 2.6)))  # the last word falls in no turn: ignored
    assert not one_voice(ref, turn((0.2, 0.5), (3.2, 3.5)))  # runs over the speaker change


def test_diagnostics_end_to_end(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    spec, model = tiny_meeting_set(tmp_path_factory, tmp_path, 2)
    main([spec, "--model", model, "--min-seconds", "0.2", "--out", str(tmp_path / "d")])
    report = json.loads((tmp_path / "d.json").read_text())
    entry = report["sets"][spec]
    assert entry["sessions"] == 2 and entry["model_turns"] >= entry["one_voice_turns"]
    ref = entry["reference"]
    assert ref["same_pairs"] + ref["diff_pairs"] > 0 and (np.isnan(ref["eer"]) or 0.0 <= ref["eer"] <= 1.0)
    assert "EER reference turns" in (tmp_path / "d.md").read_text()
