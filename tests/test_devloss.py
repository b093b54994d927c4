"""Held-out loss per voice family (model.devloss): every target token counted once, batching changes nothing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from model.checkpoint import random_model, save_model
from model.config import StsConfig
from model.data.bank import Bank
from model.data.meeting import write_sessions
from model.data.simulator import MeetingSimulator, SimulatorConfig
from model.devloss import family_losses, report
from model.heat import heat_targets
from tests.bank_fixture import tiny_bank_root


def test_family_losses(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    bank = Bank(tiny_bank_root(tmp_path_factory))
    sim = MeetingSimulator(SimulatorConfig(split="dev", min_speakers=1, max_speakers=2, max_duration=8.0), bank)
    sessions = [sim.sample(np.random.default_rng(i), session_id=f"s{i}") for i in range(4)]
    write_sessions(tmp_path / "set", sessions)
    model = random_model(StsConfig.tiny(), seed=0)
    one_by_one = family_losses(model, str(tmp_path / "set"), batch=1)
    batched = family_losses(model, str(tmp_path / "set"), batch=3)
    assert one_by_one.keys() == batched.keys() and len(one_by_one) >= 2  # single-family and mixed sessions
    expected_tokens = sum(sum(len(t) for t in heat_targets(s.turns, 2).tokens) for s in sessions)
    assert sum(t for _, t in batched.values()) == expected_tokens
    for fam, (nats, tokens) in batched.items():
        assert math.isfinite(nats) and nats > 0 and tokens == one_by_one[fam][1]
        assert nats == pytest.approx(one_by_one[fam][0], rel=1e-4), fam
    table = report([str(save_model(model, tmp_path / "m"))], [str(tmp_path / "set")])
    assert table.count("\n") == 2 + len(batched) + 1  # header, rule, one row per family, "all"
