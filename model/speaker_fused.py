"""Two speaker embedders scored as one: a weighted sum of their cosines.

Each part's unit embedding is scaled by the square root of its weight and the parts are concatenated, so that
the cosine of two fused embeddings is exactly ``sum_i w_i cos_i`` (the weights sum to 1) and the labeller's
centroid arithmetic works unchanged. The point: the voice bank's LDA (:mod:`model.speaker`) tells synthetic
voices apart, the d-vector (:mod:`model.speaker_dvector`) real people; neither is good at the other's.

``speaker.json``: ``{"kind": "fused", "parts": [{"path": "lda", "weight": 0.5}, ...], "training": {...}}``,
each part's path relative to the folder (a part is any embedder :func:`model.speaker.load_embedder` reads);
the clustering thresholds in ``training`` are the fused embedding's own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.speaker import SAMPLE_RATE, Embedder, TrainingInfo, read_config, unit_length, write_config

KIND = "fused"


class FusedEmbedder:
    """Concatenation of ``parts`` (embedders) scaled by sqrt(``weights``); see the module docstring."""

    def __init__(self, parts: list[Embedder], weights: list[float], info: TrainingInfo | None = None) -> None:
        assert len(parts) == len(weights) >= 1 and all(w > 0 for w in weights), weights
        assert abs(sum(weights) - 1.0) < 1e-6, f"weights {weights} must sum to 1"
        self.parts = parts
        self.weights = list(weights)
        self.scales = [float(np.sqrt(w)) for w in weights]
        self.info = info or TrainingInfo()

    @property
    def dim(self) -> int:
        return sum(p.dim for p in self.parts)

    def embed(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """(sum of the parts' E,) float32 unit-length embedding of a span of audio (N,) at 16 kHz."""
        return unit_length(np.concatenate([s * p.embed(samples, sample_rate)
                                           for p, s in zip(self.parts, self.scales, strict=True)]))  # fmt: skip

    @classmethod
    def load(cls, directory: str | Path) -> FusedEmbedder:
        """Read the parts named in ``directory``'s ``speaker.json``."""
        from model.speaker import load_embedder

        directory = Path(directory)
        meta, info = read_config(directory, KIND)
        parts = [load_embedder(directory / part["path"]) for part in meta["parts"]]
        return cls(parts, [float(part["weight"]) for part in meta["parts"]], info)


def write_fused(directory: str | Path, parts: dict[str, float], info: TrainingInfo | None = None) -> None:
    """Write a fused embedder's ``speaker.json`` into ``directory``: ``parts`` maps each part's folder (relative
    to ``directory``) to its weight."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    write_config(path, KIND, info or TrainingInfo(), parts=[{"path": p, "weight": w} for p, w in parts.items()])
