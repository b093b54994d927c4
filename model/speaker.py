"""Speaker embeddings of a span of 16 kHz audio: spectral and pitch statistics with a trained LDA projection.

A classic, light extractor (no neural network, numpy only at run time):

1. frames of 25 ms every 10 ms (Hann, 1024-point FFT); the loudest frames (within ``speech_db`` of the 95th
   percentile of frame energy) count as speech;
2. per speech frame: 24 MFCCs c1..c24 of a 40-band log-mel spectrum (c0, the level, is dropped), their deltas,
   and the pitch (autocorrelation peak of the same power spectrum, 60-400 Hz) where the frame is voiced;
3. statistics over the span (:func:`speaker_statistics`): mean and standard deviation of the MFCCs, standard
   deviation of the deltas, mean of the MFCCs of voiced frames, log-pitch mean / spread / 10th, 50th, 90th
   percentiles, the voiced share, and the tempo (mean log length of voiced and of unvoiced runs); optionally
   (``ubm``) the mean supervector of the MFCC frames under a mixture of broad sound classes
   (:class:`model.speaker_gmm.DiagonalGMM`), which compares like sounds with like;
4. the projection (:class:`SpeakerEmbedder`): standardise, LDA (trained on the train voices of the voice bank,
   cut from simulated meetings so that noise, reverberation and overlap are in the training data), then
   length-normalise. Two spans are the same speaker when the cosine of their embeddings is high.

Saved as ``speaker.safetensors`` (``mean``, ``scale``, ``projection``, and ``ubm_*`` with a mixture) +
``speaker.json`` (feature config, dimensions, training facts). The alternatives, same contract
(:class:`Embedder`), are ``model.speaker_net`` (a TDNN trained on the bank), ``model.speaker_dvector`` (an encoder of
real people that a PyPI package ships) and ``model.speaker_fused`` (two of them scored together); :func:`load_embedder`
loads any kind, by default the bundled one from ``model/pretrained_speaker/``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from model.speaker_gmm import DiagonalGMM

SAMPLE_RATE = 16000
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained_speaker"
WEIGHTS_FILE = "speaker.safetensors"
CONFIG_FILE = "speaker.json"


@dataclass(frozen=True)
class SpeakerFeatureConfig:
    """How the per-span statistics are computed (stored with the projection; a change needs retraining)."""

    sample_rate: int = SAMPLE_RATE  # Hz of the input samples
    win_length: int = 400  # samples per analysis frame (25 ms)
    hop_length: int = 160  # samples between frames (10 ms)
    n_fft: int = 1024  # FFT size; zero padding of n_fft - win_length keeps pitch lags free of wrap-around
    n_mels: int = 40  # mel bands of the log-mel spectrum
    f_min: float = 40.0  # Hz, lowest mel band edge
    f_max: float = 7600.0  # Hz, highest mel band edge
    n_mfcc: int = 24  # cepstral coefficients c1..c{n_mfcc} kept (c0, the level, is dropped)
    speech_db: float = 30.0  # a frame is speech within this many dB of the 95th percentile of frame energy
    f0_min: float = 60.0  # Hz, lowest pitch searched
    f0_max: float = 400.0  # Hz, highest pitch searched
    voicing: float = 0.45  # normalised autocorrelation peak above which a frame is voiced
    min_frames: int = 10  # spans with fewer speech frames are padded by repeating what they have

    def __post_init__(self) -> None:
        assert self.win_length <= self.n_fft, (self.win_length, self.n_fft)
        assert 0 < self.f0_min < self.f0_max < self.sample_rate / 2, (self.f0_min, self.f0_max)
        assert self.sample_rate / self.f0_min <= self.n_fft - self.win_length, f"f0_min {self.f0_min} Hz: longer n_fft"
        assert 1 <= self.n_mfcc < self.n_mels, (self.n_mfcc, self.n_mels)

    @property
    def stats_dim(self) -> int:
        """Length of :func:`speaker_statistics` vectors."""
        return 4 * self.n_mfcc + 8


def _mel_filters(cfg: SpeakerFeatureConfig) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular HTK-mel filters."""

    def mel(hz: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    freqs = np.linspace(0.0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    edges = 700.0 * (10.0 ** (np.linspace(mel(cfg.f_min), mel(cfg.f_max), cfg.n_mels + 2) / 2595.0) - 1.0)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    return fb.T


def _dct(n_in: int, n_out: int) -> np.ndarray:
    """(n_in, n_out) orthonormal DCT-II basis, columns 1..n_out (c0 left out)."""
    k = np.arange(1, n_out + 1)[None, :]
    n = np.arange(n_in)[:, None]
    return np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))


class _Frontend:
    """Cached constants of one :class:`SpeakerFeatureConfig`."""

    def __init__(self, cfg: SpeakerFeatureConfig) -> None:
        self.cfg = cfg
        self.window = np.hanning(cfg.win_length + 1)[:-1]  # periodic Hann
        self.mel = _mel_filters(cfg)
        self.dct = _dct(cfg.n_mels, cfg.n_mfcc)
        # autocorrelation of the window itself, to undo its taper on the lags
        w_ac = np.fft.irfft(np.abs(np.fft.rfft(self.window, cfg.n_fft)) ** 2, cfg.n_fft)
        self.window_ac = np.maximum(w_ac / w_ac[0], 1e-3)
        self.lag_lo = int(math.floor(cfg.sample_rate / cfg.f0_max))
        self.lag_hi = int(math.ceil(cfg.sample_rate / cfg.f0_min))


_FRONTENDS: dict[SpeakerFeatureConfig, _Frontend] = {}


def _frontend(cfg: SpeakerFeatureConfig) -> _Frontend:
    if cfg not in _FRONTENDS:
        _FRONTENDS[cfg] = _Frontend(cfg)
    return _FRONTENDS[cfg]


def frame_features(samples: np.ndarray, cfg: SpeakerFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """MFCCs and pitch of the speech frames of ``samples``, in time order.

    Args:
        samples: (N,) float at ``cfg.sample_rate``.

    Returns:
        mfcc (T, n_mfcc) float64 of the speech frames (T may be 0) and f0 (T,) in Hz, 0 where unvoiced.
    """
    fe = _frontend(cfg)
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if len(x) < cfg.win_length:
        return np.zeros((0, cfg.n_mfcc)), np.zeros(0)
    n = 1 + (len(x) - cfg.win_length) // cfg.hop_length
    idx = np.arange(cfg.win_length)[None, :] + cfg.hop_length * np.arange(n)[:, None]
    frames = x[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(frames * fe.window, cfg.n_fft)) ** 2  # (T, F)
    energy = 10.0 * np.log10(power.sum(axis=1) + 1e-10)
    keep = energy >= np.percentile(energy, 95) - cfg.speech_db
    power = power[keep]
    if len(power) == 0:
        return np.zeros((0, cfg.n_mfcc)), np.zeros(0)
    logmel = np.log(power @ fe.mel + 1e-8)
    mfcc = logmel @ fe.dct
    ac = np.fft.irfft(power, cfg.n_fft)[:, : cfg.n_fft // 2]
    ac = ac / np.maximum(ac[:, :1], 1e-10) / fe.window_ac[: cfg.n_fft // 2]
    seg = ac[:, fe.lag_lo : fe.lag_hi + 1]
    best = seg.argmax(axis=1)
    peak = seg[np.arange(len(seg)), best]
    f0 = np.where(peak >= cfg.voicing, cfg.sample_rate / (best + fe.lag_lo), 0.0)
    return mfcc, f0


def speaker_statistics(
    samples: np.ndarray, cfg: SpeakerFeatureConfig | None = None, ubm: DiagonalGMM | None = None
) -> np.ndarray:
    """Fixed-length statistics of a span: (cfg.stats_dim [+ ubm.supervector_dim],) float64 (see the module
    docstring); with a ``ubm``, its mean supervector of the span's MFCC frames follows.

    Spans with no speech frame give zeros; very short ones are padded by repetition.
    """
    cfg = cfg or SpeakerFeatureConfig()
    return span_statistics(*frame_features(samples, cfg), cfg, ubm)


def span_statistics(
    mfcc: np.ndarray, f0: np.ndarray, cfg: SpeakerFeatureConfig, ubm: DiagonalGMM | None = None
) -> np.ndarray:
    """:func:`speaker_statistics` of a span's speech frames: mfcc (T, n_mfcc) and f0 (T,) of :func:`frame_features`."""
    extra = ubm.supervector(mfcc) if ubm is not None else np.zeros(0)
    if len(mfcc) == 0:
        return np.zeros(cfg.stats_dim + len(extra))
    if len(mfcc) < cfg.min_frames:
        reps = int(math.ceil(cfg.min_frames / len(mfcc)))
        mfcc, f0 = np.tile(mfcc, (reps, 1)), np.tile(f0, reps)
    delta = np.diff(mfcc, axis=0) if len(mfcc) > 1 else np.zeros_like(mfcc)
    voiced = f0 > 0
    if voiced.sum() >= 3:
        lf0 = np.log(f0[voiced])
        p10, p50, p90 = np.percentile(lf0, [10, 50, 90])
        pitch = [lf0.mean(), lf0.std(), p10, p50, p90]
        voiced_mean = mfcc[voiced].mean(0)
    else:  # no pitch found: a neutral value (log 150 Hz) and no spread
        pitch = [math.log(150.0), 0.0, math.log(150.0), math.log(150.0), math.log(150.0)]
        voiced_mean = mfcc.mean(0)
    # speaking tempo: mean length (log frames) of voiced and of unvoiced runs
    edges = np.flatnonzero(np.diff(voiced.astype(np.int8))) + 1
    runs = np.diff(np.concatenate([[0], edges, [len(voiced)]]))
    kinds = voiced[np.concatenate([[0], edges])]
    tempo = [math.log(float(runs[kinds == k].mean())) if (kinds == k).any() else 0.0 for k in (True, False)]
    return np.concatenate([mfcc.mean(0), mfcc.std(0), delta.std(0), voiced_mean, pitch, [voiced.mean()], tempo, extra])


# --------------------------------------------------------------------------------------------- projection


def fit_lda(
    stats: np.ndarray, labels: list[str] | np.ndarray, dim: int, shrinkage: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LDA of (M, D) rows with a speaker label each: (mean (D,), scale (D,), projection (D, dim)) such that
    ``((x - mean) / scale) @ projection`` keeps the ``dim`` most speaker-discriminating directions.

    The within-speaker scatter is shrunk towards its diagonal by ``shrinkage`` for stability.
    """
    x = np.asarray(stats, dtype=np.float64)
    y = np.asarray(labels)
    assert x.ndim == 2 and len(x) == len(y), (x.shape, len(y))
    mean = x.mean(0)
    scale = x.std(0) + 1e-6
    z = (x - mean) / scale
    classes = np.unique(y)
    assert len(classes) > dim, f"LDA to {dim} dims needs more than {dim} speakers, got {len(classes)}"
    sw = np.zeros((z.shape[1], z.shape[1]))
    centres = []
    for c in classes:
        zc = z[y == c]
        mu = zc.mean(0)
        centres.append(mu)
        sw += (zc - mu).T @ (zc - mu)
    sw /= len(z)
    sw = (1 - shrinkage) * sw + shrinkage * np.diag(np.diag(sw))
    mc = np.asarray(centres)
    sb = np.cov(mc.T, bias=True)
    # whiten the within-speaker scatter, then diagonalise the between-speaker one
    ew, vw = np.linalg.eigh(sw)
    white = vw / np.sqrt(np.maximum(ew, 1e-9))
    eb, vb = np.linalg.eigh(white.T @ sb @ white)
    order = np.argsort(eb)[::-1][:dim]
    projection = white @ vb[:, order]
    return mean, scale, projection


def unit_length(z: np.ndarray) -> np.ndarray:
    """(..., E) vectors -> float32, each scaled to unit length (an all-zero vector stays zero)."""
    z = np.asarray(z, dtype=np.float64)
    return (z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-9)).astype(np.float32)


def lda_project(stats: np.ndarray, mean: np.ndarray, scale: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """(..., D) statistics -> (..., E) float32 unit-length embeddings under a :func:`fit_lda` projection."""
    return unit_length(((np.asarray(stats, dtype=np.float64) - mean) / scale) @ projection)


@dataclass(frozen=True)
class TrainingInfo:
    """Facts about how a projection was made (stored in the JSON)."""

    voices: int = 0  # distinct training speakers
    segments: int = 0  # training spans
    data: str = ""  # what the spans were cut from
    scores: dict[str, Any] | None = None  # dev measures, filled in by the evaluation
    clustering: dict[str, float] | None = None  # thresholds tuned for these embeddings (speaker_eval --save-tuned)


class SpeakerEmbedder:
    """Statistics -> standardise -> LDA -> unit vector.

    Args:
        mean, scale: (D,) standardisation of the statistics (D = ``config.stats_dim``, plus
            ``ubm.supervector_dim`` with a ``ubm``).
        projection: (D, E) LDA directions, whitened within speakers.
        config: the feature configuration the projection was trained with.
        ubm: optional mixture over MFCC frames whose mean supervector extends the statistics.
    """

    def __init__(
        self,
        mean: np.ndarray,
        scale: np.ndarray,
        projection: np.ndarray,
        config: SpeakerFeatureConfig | None = None,
        info: TrainingInfo | None = None,
        ubm: DiagonalGMM | None = None,
    ) -> None:
        self.config = config or SpeakerFeatureConfig()
        self.ubm = ubm
        d = self.config.stats_dim + (ubm.supervector_dim if ubm is not None else 0)
        assert mean.shape == (d,) and scale.shape == (d,), (mean.shape, scale.shape, d)
        assert projection.ndim == 2 and projection.shape[0] == d, (projection.shape, d)
        self.mean = mean.astype(np.float64)
        self.scale = scale.astype(np.float64)
        self.projection = projection.astype(np.float64)
        self.info = info or TrainingInfo()

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def project(self, stats: np.ndarray) -> np.ndarray:
        """(..., D) statistics -> (..., E) float32 unit-length embeddings."""
        return lda_project(stats, self.mean, self.scale, self.projection)

    def embed(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """(E,) float32 unit-length embedding of a span of audio (N,) at ``sample_rate`` (must be 16 kHz)."""
        assert sample_rate == self.config.sample_rate, f"resample to {self.config.sample_rate} Hz, got {sample_rate}"
        return self.project(speaker_statistics(samples, self.config, self.ubm))

    # -- training ------------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        stats: np.ndarray,
        labels: list[str] | np.ndarray,
        dim: int = 48,
        config: SpeakerFeatureConfig | None = None,
        shrinkage: float = 0.05,
        info: TrainingInfo | None = None,
        ubm: DiagonalGMM | None = None,
    ) -> SpeakerEmbedder:
        """LDA on (M, D) statistics (computed with ``ubm`` if given) with a speaker label per row; keeps the
        ``dim`` best directions.

        The within-speaker scatter is shrunk towards its diagonal by ``shrinkage`` for stability.
        """
        mean, scale, projection = fit_lda(stats, labels, dim, shrinkage)
        return cls(mean, scale, projection, config, info, ubm)

    # -- files ---------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``speaker.safetensors`` and ``speaker.json`` into ``directory``."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"mean": self.mean, "scale": self.scale, "projection": self.projection}
        ubm: dict[str, Any] = {}
        if self.ubm is not None:
            tensors.update(ubm_weights=self.ubm.weights, ubm_means=self.ubm.means, ubm_variances=self.ubm.variances)
            ubm = {"ubm_components": self.ubm.components, "ubm_relevance": self.ubm.relevance}
        save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(directory / WEIGHTS_FILE))
        write_config(directory, "stats-lda", self.info, feature_config=asdict(self.config),
                     stats_dim=len(self.mean), embedding_dim=self.dim, **ubm)  # fmt: skip

    @classmethod
    def load(cls, directory: str | Path) -> SpeakerEmbedder:
        """Read a projection written by :meth:`save`."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        meta, info = read_config(directory, "stats-lda")
        t = load_file(str(directory / WEIGHTS_FILE))
        ubm = None
        if meta.get("ubm_components"):
            f64 = {k: t[k].astype(np.float64) for k in ("ubm_weights", "ubm_means", "ubm_variances")}
            ubm = DiagonalGMM(f64["ubm_weights"], f64["ubm_means"], f64["ubm_variances"], meta["ubm_relevance"])
        config = SpeakerFeatureConfig(**meta["feature_config"])
        return cls(t["mean"], t["scale"], t["projection"], config, info, ubm)


def write_config(directory: Path, kind: str, info: TrainingInfo, **fields: Any) -> None:
    """Write ``speaker.json``: the embedder's ``kind``, its own ``fields`` and the training facts."""
    meta = {"kind": kind, **fields, "training": asdict(info)}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def save_clustering(directory: str | Path, clustering: dict[str, float]) -> None:
    """Store the clustering thresholds tuned for the embedder in ``directory`` (``training.clustering`` of its
    ``speaker.json``), where :func:`model.speaker_cluster.clusterer_config` finds them."""
    path = Path(directory) / CONFIG_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.setdefault("training", {})["clustering"] = dict(clustering)
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def read_config(directory: Path, kind: str | None = None) -> tuple[dict[str, Any], TrainingInfo]:
    """``speaker.json`` of ``directory`` and its training facts; checks the ``kind`` when one is given."""
    meta = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    assert kind is None or meta.get("kind") == kind, f"not a {kind} speaker model: {directory} ({meta.get('kind')!r})"
    return meta, TrainingInfo(**meta.get("training", {}))


class Embedder(Protocol):
    """What the labeller and the evaluations need of a speaker-embedding extractor (either kind)."""

    info: TrainingInfo

    @property
    def dim(self) -> int: ...

    def embed(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """(E,) float32 unit-length embedding of a span of audio (N,) at 16 kHz."""
        ...


def load_embedder(path: str | Path | None = None) -> Embedder:
    """The speaker embedder saved in ``path`` (default: the bundled ``model/pretrained_speaker``), of the
    kind its ``speaker.json`` names: ``stats-lda`` (:class:`SpeakerEmbedder`), ``tdnn``
    (:class:`model.speaker_net.NeuralSpeakerEmbedder`), ``dvector`` (:class:`model.speaker_dvector.DVectorEmbedder`)
    or ``fused`` (:class:`model.speaker_fused.FusedEmbedder`)."""
    directory = Path(path or PRETRAINED_DIR)
    kind = read_config(directory)[0].get("kind")
    if kind == "stats-lda":
        return SpeakerEmbedder.load(directory)
    if kind == "tdnn":
        from model.speaker_net import NeuralSpeakerEmbedder

        return NeuralSpeakerEmbedder.load(directory)
    if kind == "dvector":
        from model.speaker_dvector import DVectorEmbedder

        return DVectorEmbedder.load(directory)
    if kind == "fused":
        from model.speaker_fused import FusedEmbedder

        return FusedEmbedder.load(directory)
    raise ValueError(f"unknown speaker model kind {kind!r} in {directory}")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def exclusive_span(
    start: float, end: float, others: list[tuple[float, float]], min_seconds: float = 1.0
) -> list[tuple[float, float]]:
    """The parts of [start, end] (seconds) that no interval of ``others`` covers, if they add up to at least
    ``min_seconds`` (or to half the span, for short spans); else the whole span.

    Speech of a turn where nobody else talks gives a cleaner embedding; a turn that is all overlap keeps it all.
    """
    parts = [(start, end)]
    for o0, o1 in others:
        nxt: list[tuple[float, float]] = []
        for p0, p1 in parts:
            if o1 <= p0 or o0 >= p1:
                nxt.append((p0, p1))
                continue
            if o0 > p0:
                nxt.append((p0, o0))
            if o1 < p1:
                nxt.append((o1, p1))
        parts = nxt
    kept = sum(p1 - p0 for p0, p1 in parts)
    if kept >= min(min_seconds, 0.5 * (end - start)) and kept > 0:
        return parts
    return [(start, end)]


def cut(audio: np.ndarray, parts: list[tuple[float, float]], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The samples of ``audio`` (N,) inside ``parts`` (seconds), joined."""
    pieces = [audio[max(0, int(a * sample_rate)) : max(0, int(b * sample_rate))] for a, b in parts]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
