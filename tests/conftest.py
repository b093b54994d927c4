"""Shared fixtures: deterministic test audio and a tiny random-weight recognizer."""

from __future__ import annotations

import numpy as np
import pytest

from model.config import StsConfig
from model.recognizer import Recognizer, set_num_threads

# one intra-op thread, as the service decodes: two OpenMP threads on a busy 2-core machine spin and crawl
set_num_threads(1)


def tone_bursts(seconds: float = 6.0, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """Noise with random tone bursts: input that makes a random model's output change over time.

    Returns (seconds * sample_rate,) float32.
    """
    rs = np.random.RandomState(seed)
    n = int(seconds * sample_rate)
    x = (rs.randn(n) * 0.05).astype(np.float32)
    t = np.arange(sample_rate // 2) / sample_rate
    for _ in range(int(2 * seconds)):
        a = int(rs.uniform(0, seconds - 0.5) * sample_rate)
        x[a : a + len(t)] += (0.5 * np.sin(2 * np.pi * rs.uniform(100, 3000) * t)).astype(np.float32)
    return x


@pytest.fixture(scope="session")
def tiny_recognizer() -> Recognizer:
    return Recognizer.random(StsConfig.tiny(), seed=0)


@pytest.fixture(scope="session")
def test_audio() -> np.ndarray:
    return tone_bursts()
