"""sts-eval (clients/evaluate.py): scores, timing and word latency on a small simulated set, and the parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clients.evaluate import _word_ends, _word_latencies, edit_distance, main
from model.checkpoint import random_model, save_model
from model.config import StsConfig
from model.data.bank import Bank
from model.data.meeting import write_sessions
from model.data.simulator import MeetingSimulator, SimulatorConfig
from service.schemas import Turn
from tests.bank_fixture import tiny_bank_root


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
    bank = Bank(tiny_bank_root(tmp_path_factory))
    sim = MeetingSimulator(SimulatorConfig(split="dev", min_speakers=1, max_speakers=2, max_duration=8.0), bank)
    write_sessions(tmp_path / "set", [sim.sample(np.random.default_rng(i), session_id=f"s{i}") for i in range(3)])
    model = save_model(random_model(StsConfig.tiny(), seed=0), tmp_path / "model")
    main([str(tmp_path / "set"), "--model", str(model), "--batch", "2", "--out", str(tmp_path / "report")])
    report = json.loads((tmp_path / "report.json").read_text())
    entry = report["sets"][str(tmp_path / "set")]
    assert entry["sessions"] == 3 and entry["turns"]["reference"] > 3
    assert entry["turns"]["found"] > 0  # the lively random model talks
    assert entry["orc_wer"]["words"] > 10 and entry["orc_wer"]["rate"] > 0 and entry["cp_wer"]["rate"] > 0
    assert 0 < entry["rtf"] < 5
    assert entry["cer"]["chars"] > 10 and entry["cer"]["errors"] > 0  # seeds 0-2 draw a single-speaker session
    assert "| word latency med / p90 (s) |" in (tmp_path / "report.md").read_text()
