"""A tiny voice bank (a few espeak-ng and flite voices, about a minute of audio each), built once per test run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model.data.bank import build_bank

TRAIN_SENTENCES = [
    "we should meet again next week to talk about the budget",
    "i think that is a very good idea",
    "the train was late again this morning",
    "can you send me the report before lunch",
    "nobody knows where the keys went",
    "she walked to the market and bought some apples",
    "let me check my calendar and get back to you",
    "the weather has been strange all month",
    "that sounds fine to me",
    "please close the door on your way out",
    "he said the meeting would take an hour",
    "we ran out of coffee in the kitchen",
]
DEV_SENTENCES = [
    "the garden needs water every evening",
    "my brother moved to a small town in the north",
    "they finished the project two days early",
    "it is hard to find a quiet place to work",
    "the children played in the park until dark",
    "i forgot to bring my umbrella today",
]
FAMILIES = ("espeak", "flite")
HOURS = 0.05  # shared by the families
MAX_VOICES = 3  # per family and split

_cache: dict[str, Path] = {}


def build_tiny_bank(root: Path, hours: float = HOURS) -> dict[str, float]:
    return build_bank(
        root,
        FAMILIES,
        hours,
        seed=0,
        workers=1,
        sentences={"train": TRAIN_SENTENCES, "dev": DEV_SENTENCES},
        max_voices=MAX_VOICES,
        progress=False,
    )


def tiny_bank_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared tiny bank's root (skips when espeak-ng or flite is missing)."""
    for tool in ("espeak-ng", "flite"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install espeak-ng flite)")
    if "root" not in _cache:
        root = tmp_path_factory.mktemp("bank")
        build_tiny_bank(root)
        _cache["root"] = root
    return _cache["root"]


def tiny_meeting_set(
    tmp_path_factory: pytest.TempPathFactory, out: Path, sessions: int, min_speakers: int = 2, max_speakers: int = 2
) -> tuple[str, str]:
    """A set of ``sessions`` simulated dev meetings of at most 8 s from the tiny bank, written to ``out / "set"``,
    and a random tiny model saved to ``out / "model"``: (set folder, model folder) as command lines take them."""
    from model.checkpoint import random_model, save_model
    from model.config import StsConfig
    from model.data.bank import Bank
    from model.data.meeting import write_sessions
    from model.data.simulator import MeetingSimulator, SimulatorConfig

    bank = Bank(tiny_bank_root(tmp_path_factory))
    cfg = SimulatorConfig(split="dev", min_speakers=min_speakers, max_speakers=max_speakers, max_duration=8.0)
    sim = MeetingSimulator(cfg, bank)
    write_sessions(out / "set", [sim.sample(np.random.default_rng(i), session_id=f"s{i}") for i in range(sessions)])
    model = save_model(random_model(StsConfig.tiny(), seed=0), out / "model")
    return str(out / "set"), str(model)
