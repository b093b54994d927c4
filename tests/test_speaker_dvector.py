"""The d-vector speaker embedding (model.speaker_dvector) and the fused embedder (model.speaker_fused): the
reimplementation gives resemblyzer's embeddings, its pause cutting keeps speech, the fusion's cosine is the
weighted sum of its parts', and both load through model.speaker.load_embedder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from model.speaker import cosine, load_embedder
from model.speaker_dvector import DVectorConfig, DVectorEmbedder, DVectorNet, slaney_mel_filters
from model.speaker_fused import FusedEmbedder, write_fused

# converted weights (not bundled: docs/speaker-labels.md, session 30), e.g. STS_DVECTOR_DIR=/tmp/dvector after
# `pip download resemblyzer==0.1.4 --no-deps -d /tmp/rz` and
# `python scripts/convert_dvector.py /tmp/rz/Resemblyzer-0.1.4-py3-none-any.whl --out /tmp/dvector`
DVECTOR_DIR = Path(os.environ.get("STS_DVECTOR_DIR", "/nonexistent"))
REFERENCE = Path(__file__).parent / "fixtures" / "dvector_reference.json"


def test_signal(f0: float, seconds: float = 3.0) -> np.ndarray:
    """(N,) float32 at 16 kHz: a voiced sound at ``f0`` Hz with vibrato and a moving formant, no pauses."""
    t = np.arange(int(16000 * seconds)) / 16000
    phase = 2 * np.pi * f0 * (t + 0.02 * np.sin(2 * np.pi * 3 * t))
    formant = 700 + 400 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(k * phase) / k * np.exp(-(((k * f0 - formant) / 600) ** 2)) for k in range(1, 30))
    return (0.05 * x * (1 + 0.3 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


test_signal.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(scope="module")
def dvector() -> DVectorEmbedder:
    if not (DVECTOR_DIR / "speaker.safetensors").exists():
        pytest.skip("no converted d-vector weights: set STS_DVECTOR_DIR (see scripts/convert_dvector.py)")
    return DVectorEmbedder.load(DVECTOR_DIR)


def test_mel_filters_are_librosas() -> None:
    """Checked against librosa.filters.mel(sr=16000, n_fft=400, n_mels=40) once (max difference 7e-10); here
    the properties that pin it: Slaney-normalised triangles (area 2 / width in Hz), peaks at the mel centres."""
    fb = slaney_mel_filters(16000, 400, 40)
    assert fb.shape == (40, 201) and fb.min() >= 0
    peaks = fb.argmax(1)
    assert np.all(np.diff(peaks) > 0) and peaks[0] == 2 and peaks[-1] == 185
    assert fb[0].max() == pytest.approx(0.01240452, rel=1e-5)  # librosa's value for the first band


def test_embeddings_match_resemblyzer(dvector: DVectorEmbedder) -> None:
    """The reference embeddings were computed by resemblyzer 0.1.4 itself on the same signals (without its
    webrtcvad pause trimming: the signals have no pauses, and ours keeps them whole too)."""
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    for name, f0 in (("low", 110.0), ("high", 210.0)):
        x = test_signal(f0)
        assert len(dvector.speech(x)) == len(x) - len(x) % dvector.config.vad_window
        ours = dvector.embed(x)
        np.testing.assert_allclose(ours, np.asarray(ref[name], np.float32), atol=2e-4)
    assert cosine(dvector.embed(test_signal(110.0)), dvector.embed(test_signal(210.0))) < 0.99


@pytest.fixture(scope="module")
def untrained() -> DVectorEmbedder:
    """The pipeline with random weights: what does not depend on the weights."""
    torch.manual_seed(0)
    return DVectorEmbedder(DVectorNet(DVectorConfig()))


def test_pauses_are_cut_and_quiet_spans_raised(untrained: DVectorEmbedder) -> None:
    dvector = untrained
    x = test_signal(150.0, 1.0)
    gap = np.zeros(16000, np.float32)
    kept = dvector.speech(np.concatenate([x, gap, x]))
    assert 2 * 15840 <= len(kept) <= 2 * 16000 + 8 * 480  # the second of silence goes, bar a few windows
    quiet = dvector.speech(0.01 * x)
    level = 10 * np.log10(np.mean(quiet.astype(np.float64) ** 2))
    assert level == pytest.approx(dvector.config.target_dbfs, abs=0.5)
    loud = dvector.speech(10 * x)  # already above the target: left as it is
    np.testing.assert_allclose(loud, 10 * x[: len(loud)], rtol=1e-6)


@pytest.mark.parametrize("n", [0, 50, 400, 481, 5000, 16000 * 5 + 7])
def test_any_length_gives_a_unit_vector(untrained: DVectorEmbedder, n: int) -> None:
    dvector = untrained
    x = np.sin(np.arange(n) * 0.05).astype(np.float32) * 0.1
    z = dvector.embed(x)
    assert z.shape == (256,) and np.isfinite(z).all() and abs(float(np.linalg.norm(z)) - 1) < 1e-4


def test_partials_cover_the_span(untrained: DVectorEmbedder) -> None:
    emb = untrained
    assert emb.partial_starts(8000) == [0]  # shorter than one partial: one, zero-padded
    starts = emb.partial_starts(16000 * 4)  # 401 frames, a partial every 77 frames (1.3 per second)
    assert starts == [0, 77, 154, 231] and starts[-1] + 160 >= 401 * 0.75


def test_fused_cosine_is_the_weighted_sum(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ca, cb = DVectorConfig(embedding_dim=16), DVectorConfig(hidden_size=32, embedding_dim=8)
    a, b = DVectorEmbedder(DVectorNet(ca), ca), DVectorEmbedder(DVectorNet(cb), cb)
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    write_fused(tmp_path, {"a": 0.7, "b": 0.3})
    fused = load_embedder(tmp_path)
    assert isinstance(fused, FusedEmbedder) and fused.dim == 24
    x, y = test_signal(120.0, 2.0), test_signal(180.0, 2.0)
    want = 0.7 * cosine(a.embed(x), a.embed(y)) + 0.3 * cosine(b.embed(x), b.embed(y))
    assert cosine(fused.embed(x), fused.embed(y)) == pytest.approx(want, abs=1e-5)
    with pytest.raises(AssertionError, match="sum to 1"):
        FusedEmbedder([a, b], [0.7, 0.7])
