"""The speaker-embedding extractors (model.speaker; the bundled one, whichever kind): determinism, separation
of two voices, save/load."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model.speaker import (
    PRETRAINED_DIR,
    Embedder,
    SpeakerEmbedder,
    SpeakerFeatureConfig,
    exclusive_span,
    load_embedder,
    speaker_statistics,
)

SENTENCES = [
    "we should meet again next week to talk about the budget",
    "the train was late again this morning",
    "let me check my calendar and get back to you",
]


def _voices() -> dict[str, list[np.ndarray]]:
    """Three sentences each from a low male espeak-ng voice and flite's slt (a female voice)."""
    for tool in ("espeak-ng", "flite"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install espeak-ng flite)")
    from model.data.families import get_family
    from model.data.voices import Voice

    espeak = Voice("espeak", "espeak:en-us+m3:p40:s170", "en-us+m3", speed=1.0, pitch=0.8)
    slt = Voice("flite", "flite:slt:p1.00:s1.00", "slt")
    return {v.voice_id: [get_family(v.family).synthesize(v, s) for s in SENTENCES] for v in (espeak, slt)}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    if not (PRETRAINED_DIR / "speaker.safetensors").exists():
        pytest.skip(f"no bundled speaker model in {PRETRAINED_DIR} (python -m model.speaker_train)")
    return load_embedder()


def test_statistics_shape_and_silence() -> None:
    cfg = SpeakerFeatureConfig()
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    assert speaker_statistics(x, cfg).shape == (cfg.stats_dim,)
    assert not np.any(speaker_statistics(np.zeros(100, np.float32), cfg))  # too short: zeros


def test_embedding_is_deterministic_and_separates_two_voices(embedder: Embedder) -> None:
    voices = _voices()
    embs = {v: [embedder.embed(x) for x in xs] for v, xs in voices.items()}
    first = next(iter(voices.values()))[0]
    assert np.array_equal(embedder.embed(first), embedder.embed(first.copy()))
    for vs in embs.values():
        for e in vs:
            assert e.shape == (embedder.dim,) and abs(float(np.linalg.norm(e)) - 1.0) < 1e-4
    (a, ea), (b, eb) = embs.items()
    same = [float(x @ y) for es in (ea, eb) for i, x in enumerate(es) for y in es[i + 1 :]]
    diff = [float(x @ y) for x in ea for y in eb]
    assert min(same) > max(diff), f"same-voice cosines {same} vs different {diff} ({a} / {b})"


def test_save_load_round_trip(tmp_path: Path) -> None:
    """Train a projection on made-up statistics of 20 'speakers', save it, load it: same embeddings."""
    cfg = SpeakerFeatureConfig()
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((20, cfg.stats_dim))
    stats = np.concatenate([c + 0.3 * rng.standard_normal((10, cfg.stats_dim)) for c in centres])
    labels = [f"v{i}" for i in range(20) for _ in range(10)]
    emb = SpeakerEmbedder.train(stats, labels, dim=8, config=cfg)
    emb.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speaker.json", "speaker.safetensors"]
    back = SpeakerEmbedder.load(tmp_path)
    assert back.config == cfg and back.dim == 8
    np.testing.assert_allclose(back.project(stats[:5]), emb.project(stats[:5]), atol=1e-5)
    # the LDA separates the made-up speakers: each row is closest to its own speaker's mean
    z = back.project(stats)
    means = np.stack([z[i * 10 : (i + 1) * 10].mean(0) for i in range(20)])
    assert (np.argmax(z @ means.T, axis=1) == np.repeat(np.arange(20), 10)).mean() > 0.95


def test_exclusive_span() -> None:
    assert exclusive_span(0.0, 4.0, [(1.0, 2.0)]) == [(0.0, 1.0), (2.0, 4.0)]
    assert exclusive_span(0.0, 4.0, [(-1.0, 3.5)]) == [(0.0, 4.0)]  # too little left: the whole span
    assert exclusive_span(0.0, 4.0, []) == [(0.0, 4.0)]


def test_training_spans_of_sped_up_speakers_are_classes_of_their_own(tmp_path_factory: pytest.TempPathFactory) -> None:
    from model.data.bank import Bank
    from model.speaker_train import collect
    from tests.bank_fixture import tiny_bank_root

    bank = Bank(tiny_bank_root(tmp_path_factory))
    train_voices = set(bank.voices("train"))
    lengths, labels = collect(bank, 4, 0, len, progress=False, speed_prob=1.0)
    utterances = len(bank.utterances("train"))
    assert len(labels) == len(lengths) > utterances
    assert set(labels[:utterances]) <= train_voices  # the bank utterances as synthesised
    meeting = labels[utterances:]
    assert all(v.partition("@")[0] in train_voices and 0.9 <= float(v.partition("@")[2]) <= 1.1 for v in meeting)
    _, plain = collect(bank, 4, 0, len, progress=False)
    assert set(plain) <= train_voices
