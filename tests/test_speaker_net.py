"""The TDNN speaker embedder (model.speaker_net) and its trainer: shapes, determinism, learning, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.speaker import SpeakerEmbedder, load_embedder
from model.speaker_net import TDNN, NeuralSpeakerEmbedder, TDNNConfig
from model.speaker_train import train_tdnn

SMALL = TDNNConfig(channels=32, pooled_channels=32, embedding_dim=16)


def _tone_speaker(rng: np.random.Generator, f0: float, seconds: float) -> np.ndarray:
    """A made-up 'voice': harmonics of ``f0`` Hz with a vibrato, in a little noise, 16 kHz."""
    t = np.arange(int(seconds * 16000)) / 16000
    phase = 2 * np.pi * f0 * (t + 0.002 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.1 * x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_embed_shapes_and_determinism() -> None:
    torch.manual_seed(0)
    emb = NeuralSpeakerEmbedder(TDNN(80, SMALL), SMALL)
    x = _tone_speaker(np.random.default_rng(0), 120.0, 1.0)
    e = emb.embed(x)
    assert e.shape == (SMALL.embedding_dim,) and e.dtype == np.float32
    assert abs(float(np.linalg.norm(e)) - 1.0) < 1e-5
    assert np.array_equal(e, emb.embed(x.copy()))
    for short in (np.zeros(0, np.float32), x[:300], x[:2000]):  # empty, under one frame, under min_frames
        s = emb.embed(short)
        assert s.shape == (SMALL.embedding_dim,) and np.all(np.isfinite(s))
    with pytest.raises(AssertionError, match="16000"):
        emb.embed(x, sample_rate=8000)


def test_training_separates_made_up_voices_and_round_trips(tmp_path: Path) -> None:
    """Six tone 'voices': after a short training, held-out spans are nearest their own voice; the saved
    embedder loads (by its kind) to the same embeddings."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    f0s = [90.0, 120.0, 150.0, 190.0, 240.0, 300.0]
    featurizer = NeuralSpeakerEmbedder(TDNN(80, SMALL), SMALL)
    frames = [featurizer.frames(_tone_speaker(rng, f, 0.8)) for f in f0s for _ in range(6)]
    labels = [f"v{i}" for i in range(len(f0s)) for _ in range(6)]
    net = train_tdnn(frames, labels, steps=60, batch_size=16, lr=3e-3, crop_frames=(40, 60), config=SMALL,
                     progress=False)  # fmt: skip
    emb = NeuralSpeakerEmbedder(net, SMALL)
    test = np.stack([emb.embed(_tone_speaker(rng, f, 1.0)) for f in f0s for _ in range(2)])
    own = np.repeat(np.arange(len(f0s)), 2)
    sims = test @ test.T
    same = own[:, None] == own[None, :]
    off = ~np.eye(len(own), dtype=bool)
    # an untrained net maps every span to about the same vector (cosines ~1, margin ~0)
    assert sims[same & off].mean() - sims[~same].mean() > 0.5
    np.fill_diagonal(sims, -np.inf)
    assert (own[np.argmax(sims, axis=1)] == own).mean() >= 0.9

    emb.save(tmp_path)
    assert json.loads((tmp_path / "speaker.json").read_text())["kind"] == "tdnn"
    back = load_embedder(tmp_path)
    assert isinstance(back, NeuralSpeakerEmbedder) and back.config == SMALL
    x = _tone_speaker(rng, 150.0, 1.5)
    np.testing.assert_allclose(back.embed(x), emb.embed(x), atol=1e-5)


def test_load_embedder_by_kind(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    lda = SpeakerEmbedder.train(rng.standard_normal((60, 104)), [f"v{i % 12}" for i in range(60)], dim=4)
    lda.save(tmp_path)
    assert isinstance(load_embedder(tmp_path), SpeakerEmbedder)
    meta = json.loads((tmp_path / "speaker.json").read_text())
    (tmp_path / "speaker.json").write_text(json.dumps({**meta, "kind": "ivector"}))
    with pytest.raises(ValueError, match="unknown speaker model kind 'ivector'"):
        load_embedder(tmp_path)
