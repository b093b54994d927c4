"""Online speaker clustering: each final turn joins a known speaker or opens a new one, once and for all.

Contract (a small policy class, numpy in, labels out):

    clusterer = OnlineSpeakerClusterer(ClustererConfig(threshold=0.4, max_speakers=None))
    label = clusterer.assign(embedding, start, end, overlapping={"S2"}, rival=open_turn_embedding)

- ``embedding``: (E,) unit vector of the turn (``model.speaker.SpeakerEmbedder.embed``); ``start``/``end`` in
  seconds give its weight (speech seconds, capped) and nothing else.
- ``overlapping``: labels of turns that overlap this one in time. They are NEVER given to it: two voices
  heard at once are two people (the model's two channels only ever hold two different talkers at a time).
- ``rival``: optional (E,) embedding of a turn that overlaps this one but is still open (its audio so far).
  The turn and its rival are then labelled jointly (the best pair of DIFFERENT labels), and only this turn's
  label is committed; so a short backchannel closing inside a long turn does not take the long turn's speaker.
- Scoring: the cosine to each speaker's centroid (duration-weighted mean of its turns' embeddings); opening a
  new speaker scores ``threshold``. A turn shorter than ``min_new_seconds`` opens a new speaker only when no
  known one is allowed. Once ``max_speakers`` exist, no new one is opened unless the overlap rule leaves no
  known speaker (the rule wins over the hint).
- Labels are "S1", "S2", ... in order of first appearance and never change (no relabelling).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

NEW = ""  # stands for "a new speaker" among the candidates


@dataclass(frozen=True)
class ClustererConfig:
    """The clustering policy's knobs (defaults tuned on simulated dev meetings, see model.speaker_eval)."""

    threshold: float = 0.4  # cosine to a centroid at which joining it scores the same as a new speaker
    min_new_seconds: float = 1.0  # turns shorter than this join a known speaker when one is allowed
    max_speakers: int | None = None  # hint: open no more speakers than this (None: no limit)
    max_weight_seconds: float = 10.0  # a turn weighs its seconds in its centroid, at most this much
    label_prefix: str = "S"  # labels are prefix + 1, 2, ...

    def __post_init__(self) -> None:
        assert -1.0 <= self.threshold <= 1.0, f"threshold is a cosine, got {self.threshold}"
        assert self.max_speakers is None or self.max_speakers >= 1, f"max_speakers {self.max_speakers}"
        assert self.max_weight_seconds > 0, self.max_weight_seconds


@dataclass
class Speaker:
    """One speaker found so far."""

    label: str
    total: np.ndarray  # (E,) weighted sum of its turns' embeddings
    seconds: float = 0.0  # sum of the weights
    turns: int = 0

    @property
    def centroid(self) -> np.ndarray:
        """(E,) unit vector."""
        return self.total / max(float(np.linalg.norm(self.total)), 1e-9)


@dataclass
class OnlineSpeakerClusterer:
    """See the module docstring."""

    config: ClustererConfig = field(default_factory=ClustererConfig)
    speakers: list[Speaker] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.speakers]

    def scores(self, embedding: np.ndarray) -> dict[str, float]:
        """Cosine of ``embedding`` to every speaker's centroid."""
        e = _unit(embedding)
        return {s.label: float(np.dot(e, s.centroid)) for s in self.speakers}

    def _candidates(self, seconds: float, exclude: Collection[str]) -> list[str]:
        allowed = [s.label for s in self.speakers if s.label not in exclude]
        cfg = self.config
        full = cfg.max_speakers is not None and len(self.speakers) >= cfg.max_speakers
        if not allowed or (not full and seconds >= cfg.min_new_seconds):
            allowed.append(NEW)
        return allowed

    def peek(self, embedding: np.ndarray, start: float, end: float, overlapping: Collection[str] = ()) -> str:
        """The label :meth:`assign` would give now, without committing anything ("" for a new speaker)."""
        sims = self.scores(embedding)
        cands = self._candidates(end - start, overlapping)
        return max(cands, key=lambda c: sims.get(c, self.config.threshold) if c else self.config.threshold)

    def assign(
        self,
        embedding: np.ndarray,
        start: float,
        end: float,
        overlapping: Collection[str] = (),
        rival: np.ndarray | None = None,
        rival_seconds: float = 0.0,
    ) -> str:
        """Label a final turn (see the module docstring) and add it to its speaker; returns the label."""
        cfg = self.config
        seconds = max(end - start, 0.0)
        sims = self.scores(embedding)
        cands = self._candidates(seconds, overlapping)

        def score(c: str, s: dict[str, float]) -> float:
            return s.get(c, cfg.threshold) if c else cfg.threshold

        if rival is None or not self.speakers:
            choice = max(cands, key=lambda c: score(c, sims))
        else:
            rsims = self.scores(rival)
            w, rw = min(seconds, cfg.max_weight_seconds), min(rival_seconds, cfg.max_weight_seconds)
            rcands = [s.label for s in self.speakers] + [NEW]
            best = max(
                ((w * score(a, sims) + rw * score(b, rsims), a) for a in cands for b in rcands if a != b or a == NEW),
                key=lambda x: x[0],
            )
            choice = best[1]
        return self._add(choice, embedding, seconds)

    def _add(self, label: str, embedding: np.ndarray, seconds: float) -> str:
        e = _unit(embedding)
        w = max(min(seconds, self.config.max_weight_seconds), 0.05)
        if not label:
            label = f"{self.config.label_prefix}{len(self.speakers) + 1}"
            self.speakers.append(Speaker(label, np.zeros_like(e)))
        spk = next(s for s in self.speakers if s.label == label)
        spk.total = spk.total + w * e
        spk.seconds += w
        spk.turns += 1
        return label


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-9)
