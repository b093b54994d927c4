"""The frame mixture of the speaker statistics (model.speaker_gmm), an embedder that uses it, and the clustering
thresholds stored with an embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.speaker import SpeakerEmbedder, SpeakerFeatureConfig, load_embedder, save_clustering, speaker_statistics
from model.speaker_gmm import DiagonalGMM


def _two_clusters(rng: np.random.Generator, n: int = 2000) -> np.ndarray:
    """(2n, 2) frames: n around (-5, 0) with std 1, n around (5, 3) with std 0.5."""
    a = rng.normal([-5.0, 0.0], 1.0, (n, 2))
    b = rng.normal([5.0, 3.0], 0.5, (n, 2))
    return np.concatenate([a, b])


def test_em_finds_two_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    gmm = DiagonalGMM.fit(_two_clusters(rng), 2, rng)
    order = np.argsort(gmm.means[:, 0])
    np.testing.assert_allclose(gmm.means[order], [[-5.0, 0.0], [5.0, 3.0]], atol=0.1)
    np.testing.assert_allclose(gmm.variances[order], [[1.0, 1.0], [0.25, 0.25]], rtol=0.15)
    np.testing.assert_allclose(gmm.weights, [0.5, 0.5], atol=0.02)
    p = gmm.posteriors(np.array([[-5.0, 0.0], [5.0, 3.0]]))
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert p[0, order[0]] > 0.99 and p[1, order[1]] > 0.99


def test_supervector_moves_only_the_component_that_saw_the_frames() -> None:
    gmm = DiagonalGMM(np.array([0.5, 0.5]), np.array([[-5.0, 0.0], [5.0, 3.0]]), np.ones((2, 2)), relevance=8.0)
    assert not gmm.supervector(np.zeros((0, 2))).any()  # no frame: the prior
    shifted = np.tile([[-4.0, 0.0]], (8, 1))  # 8 frames one unit right of component 0's mean
    sv = gmm.supervector(shifted).reshape(2, 2)
    np.testing.assert_allclose(sv[0], [np.sqrt(0.5) * 8 / (8 + 8), 0.0], atol=1e-6)  # MAP: half-way with N = r
    np.testing.assert_allclose(sv[1], 0.0, atol=1e-6)
    more = gmm.supervector(np.tile([[-4.0, 0.0]], (800, 1))).reshape(2, 2)
    assert sv[0, 0] < more[0, 0] < np.sqrt(0.5)  # more frames: closer to the full offset


def test_embedder_with_a_mixture_round_trips(tmp_path: Path) -> None:
    cfg = SpeakerFeatureConfig()
    rng = np.random.default_rng(2)
    ubm = DiagonalGMM.fit(rng.standard_normal((500, cfg.n_mfcc)), 4, rng, iterations=3)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    stats = speaker_statistics(x, cfg, ubm)
    assert stats.shape == (cfg.stats_dim + 4 * cfg.n_mfcc,)
    assert np.array_equal(stats[: cfg.stats_dim], speaker_statistics(x, cfg))
    assert speaker_statistics(np.zeros(100, np.float32), cfg, ubm).shape == stats.shape  # too short: zeros
    d = len(stats)
    centres = rng.standard_normal((12, d))
    data = np.concatenate([c + 0.3 * rng.standard_normal((6, d)) for c in centres])
    labels = [f"v{i}" for i in range(12) for _ in range(6)]
    emb = SpeakerEmbedder.train(data, labels, dim=6, config=cfg, ubm=ubm)
    emb.save(tmp_path)
    back = SpeakerEmbedder.load(tmp_path)
    assert back.ubm is not None and back.ubm.components == 4 and back.ubm.relevance == ubm.relevance
    np.testing.assert_allclose(back.ubm.means, ubm.means, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(back.embed(x), emb.embed(x), atol=1e-5)


def test_tuned_thresholds_are_stored_with_the_embedder(tmp_path: Path) -> None:
    cfg = SpeakerFeatureConfig()
    rng = np.random.default_rng(3)
    stats = rng.standard_normal((40, cfg.stats_dim))
    SpeakerEmbedder.train(stats, [f"v{i % 8}" for i in range(40)], dim=4, config=cfg).save(tmp_path)
    assert load_embedder(tmp_path).info.clustering is None
    save_clustering(tmp_path, {"threshold": 0.25, "merge_threshold": 0.4})
    assert load_embedder(tmp_path).info.clustering == {"threshold": 0.25, "merge_threshold": 0.4}
