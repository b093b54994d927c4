"""Online speaker clustering: each final turn joins a known speaker or opens a new one; revised as it goes.

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
  known speaker (the rule wins over the hint); :meth:`revise` then brings them down to the hint where the
  turns allow it.
- Labels are "S1", "S2", ... in order of first appearance; :meth:`assign` never changes a given label (only
  :meth:`adopt` does).
- :meth:`revise` looks again at every turn so far with the whole meeting's evidence (what online clustering
  cannot: the early turns were labelled before the speakers' centroids had formed). It merges the most similar
  pair of speakers while their centroids' cosine is at least ``merge_threshold`` and no turn of one overlaps a
  turn of the other; merges a small speaker (at most ``recolor_share`` of the meeting's labelled seconds and
  ``recolor_ratio`` times the other's) into the closest speaker it overlaps when their cosine is at least
  ``recolor_threshold``; and labels every turn again jointly: the labelling that maximises the seconds-weighted
  cosine of each turn to its speaker's centroid with no two overlapping turns alike, exact by dynamic
  programming (the overlap graph of two channels' turns is a forest); a few rounds.
  The new labels keep the old names where they agree (speakers matched by shared seconds), so only the turns
  that really move change label. ``revise(live=True)`` is the same with ``live_merge_threshold`` and
  ``live_recolor_threshold`` for the merges: the revision the service runs after every final turn and keeps with
  :meth:`adopt` (``live_revise``); turns overlapping a turn still open are ``pinned`` there.
- :meth:`adopt` takes revised labels as the turns' labels from then on: the speakers are rebuilt from their
  turns, so later turns are assigned against the revised speakers (without it, a spurious speaker that only the
  end revision would merge keeps drawing turns for the rest of a long meeting). A merge is never undone, hence
  the stricter live threshold. A label that a revision leaves without turns is never given again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

NEW = ""  # stands for "a new speaker" among the candidates
PIN = 1e6  # _assign: the cost of moving a pinned turn (larger than any sum of weighted cosines)


@dataclass(frozen=True)
class ClustererConfig:
    """The clustering policy's knobs. The thresholds here are fallbacks: an embedder carries the ones tuned for
    its embeddings (``model.speaker_eval --tune N --save-tuned``), see :func:`clusterer_config`."""

    threshold: float = 0.4  # cosine to a centroid at which joining it scores the same as a new speaker
    min_new_seconds: float = 1.0  # turns shorter than this join a known speaker when one is allowed
    max_speakers: int | None = None  # hint: open no more speakers than this (None: no limit)
    max_weight_seconds: float = 10.0  # a turn weighs its seconds in its centroid, at most this much
    merge_threshold: float = 0.4  # revise: merge two never-overlapping speakers whose centroids are this close
    recolor_share: float = 0.0  # revise: a speaker with at most this share of the labelled seconds may also
    # merge into one it overlaps, if their centroids are recolor_threshold close (0: never); see _recolor_merge
    recolor_threshold: float = 0.5
    recolor_ratio: float = 1e9  # ... and if it has at most this many times the seconds of the one it merges into
    live_revise: bool = True  # revise after every final turn and keep the result (see OnlineSpeakerClusterer)
    live_merge_threshold: float = 0.4  # ... merging never-overlapping speakers there only this close (a merge
    # is never undone, and early centroids are noisy)
    live_recolor_threshold: float = 0.6  # ... and a small speaker into one it overlaps only this close
    revise_rounds: int = 3  # revise: rounds of merging and moving turns
    label_prefix: str = "S"  # labels are prefix + 1, 2, ...

    def __post_init__(self) -> None:
        assert -1.0 <= self.threshold <= 1.0, f"threshold is a cosine, got {self.threshold}"
        assert -1.0 <= self.merge_threshold, (
            f"merge_threshold is a cosine (> 1: never merge), got {self.merge_threshold}"
        )
        assert self.max_speakers is None or self.max_speakers >= 1, f"max_speakers {self.max_speakers}"
        assert self.max_weight_seconds > 0, self.max_weight_seconds
        assert 0.0 <= self.recolor_share <= 1.0, f"recolor_share is a share of seconds, got {self.recolor_share}"


# the knobs a tuning may store with an embedder
TUNABLE = (
    "threshold",
    "merge_threshold",
    "min_new_seconds",
    "recolor_share",
    "recolor_threshold",
    "recolor_ratio",
    "live_merge_threshold",
    "live_recolor_threshold",
    "live_revise",
)


def clusterer_config(tuned: dict[str, float] | None = None, **overrides: Any) -> ClustererConfig:
    """The clustering policy for an embedder: the defaults, then the thresholds tuned for its embeddings
    (``embedder.info.clustering``: the cosine scale differs from one projection to another), then ``overrides``
    (e.g. the client's ``max_speakers``)."""
    # each stored knob as its field's type (the float thresholds, the bool live_revise), as StreamingConfig does
    known = {k: type(getattr(ClustererConfig, k))(v) for k, v in (tuned or {}).items() if k in TUNABLE}
    return ClustererConfig(**{**known, **overrides})


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


@dataclass(frozen=True)
class TurnRecord:
    """One labelled turn, as :meth:`OnlineSpeakerClusterer.revise` needs it."""

    start: float  # seconds
    end: float  # seconds
    embedding: np.ndarray  # (E,) unit vector, or zeros where the turn had no audio (then it never moves)
    weight: float  # seconds it weighs in a centroid
    label: str  # as assigned online


@dataclass
class OnlineSpeakerClusterer:
    """See the module docstring."""

    config: ClustererConfig = field(default_factory=ClustererConfig)
    speakers: list[Speaker] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)  # every assigned turn, in order
    opened: int = 0  # speakers ever opened: the next new one is prefix + (opened + 1), so no label is reused

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.speakers]

    @property
    def next_label(self) -> str:
        """The label a new speaker would get."""
        return f"{self.config.label_prefix}{self.opened + 1}"

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
        return self._add(choice, embedding, seconds, start, end)

    def _add(self, label: str, embedding: np.ndarray, seconds: float, start: float, end: float) -> str:
        e = _unit(embedding)
        w = max(min(seconds, self.config.max_weight_seconds), 0.05)
        if not label:
            label = self.next_label
            self.opened += 1
            self.speakers.append(Speaker(label, np.zeros_like(e)))
        spk = next(s for s in self.speakers if s.label == label)
        spk.total = spk.total + w * e
        spk.seconds += w
        spk.turns += 1
        self.turns.append(TurnRecord(start, end, e, w if np.any(e) else 0.0, label))
        return label

    def note(self, label: str, start: float, end: float) -> None:
        """Record a final turn labelled without its voice (too little audio): it follows its speaker when
        :meth:`revise` merges speakers, and never moves on its own."""
        assert label in self.labels, f"unknown speaker {label!r}"
        self.turns.append(TurnRecord(start, end, np.zeros_like(self.speakers[0].total), 0.0, label))

    def adopt(self, labels: list[str]) -> None:
        """Take ``labels`` (one per turn, in order, as :meth:`revise` returns them) as the turns' labels from now
        on: the speakers are rebuilt from their turns, a speaker left without turns is gone (its label is never
        given again), and later turns are assigned to the rebuilt speakers."""
        assert len(labels) == len(self.turns), (len(labels), len(self.turns))
        known = {s.label for s in self.speakers}
        used = set(labels)
        assert used <= known, f"unknown labels {used - known}"
        self.turns = [replace(r, label=lab) for r, lab in zip(self.turns, labels, strict=True)]
        rebuilt = {s.label: Speaker(s.label, np.zeros_like(s.total)) for s in self.speakers if s.label in used}
        for r in self.turns:
            spk = rebuilt[r.label]
            spk.total = spk.total + r.weight * r.embedding
            spk.seconds += r.weight
            spk.turns += 1
        self.speakers = list(rebuilt.values())

    def ending_after(self, since: float | None) -> list[int]:
        """Indices of the turns that end after ``since`` seconds (none for None). During the stream, with
        ``since`` the start of the earliest turn still open: the turns that overlap it, which :meth:`revise`
        must pin."""
        return [] if since is None else [i for i, r in enumerate(self.turns) if r.end > since]

    def revise(self, live: bool = False, pinned: Collection[int] = ()) -> list[str]:
        """Labels of every assigned or noted turn (in order) after looking again at the whole meeting (see the module
        docstring). Pure: the online state is unchanged. ``live``: a revision during the stream, which merges
        never-overlapping speakers only at ``live_merge_threshold`` (and small speakers at
        ``live_recolor_threshold``). ``pinned``: indices of turns that are never moved to another speaker (only
        renamed with their speaker when it merges): during the stream, the turns that overlap a turn still open,
        with which they were labelled jointly; the revision cannot see the open turn, and moving them could hand
        it a label it must then avoid."""
        recs = self.turns
        labels = [r.label for r in recs]
        if len(recs) < 2:
            return labels
        cfg = self.config
        if live:
            cfg = replace(cfg, merge_threshold=cfg.live_merge_threshold, recolor_threshold=cfg.live_recolor_threshold)
        emb = np.stack([r.embedding for r in recs])
        w = np.asarray([r.weight for r in recs])
        overlaps = _overlap_pairs([(r.start, r.end) for r in recs])
        for _ in range(cfg.revise_rounds):
            labels = _merge(labels, emb, w, overlaps, cfg)
            labels = _recolor_merge(labels, emb, w, overlaps, cfg, pinned)
            moved = _assign(labels, emb, w, overlaps, pinned) or _move(labels, emb, w, overlaps, pinned)
            if moved == labels:
                break
            labels = moved
        return _keep_names(labels, [r.label for r in recs], w)


def _overlap_pairs(spans: list[tuple[float, float]]) -> list[list[int]]:
    """For every span, the indices of the other spans that overlap it in time."""
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    out: list[list[int]] = [[] for _ in spans]
    for a, i in enumerate(order):
        for j in order[a + 1 :]:
            if spans[j][0] >= spans[i][1]:
                break
            if spans[j][1] > spans[i][0]:
                out[i].append(j)
                out[j].append(i)
    return out


def _clashes(labels: list[str], overlaps: list[list[int]]) -> set[tuple[str, str]]:
    """The pairs of labels (both orders) that some two overlapping turns hold."""
    return {(labels[i], labels[j]) for i, js in enumerate(overlaps) for j in js}


def _centroids(labels: list[str], emb: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for lab in dict.fromkeys(labels):
        idx = [i for i, x in enumerate(labels) if x == lab]
        out[lab] = _unit((w[idx, None] * emb[idx]).sum(0))
    return out


def _merge(labels: list[str], emb: np.ndarray, w: np.ndarray, overlaps: list[list[int]],
           cfg: ClustererConfig) -> list[str]:  # fmt: skip
    """Merge never-overlapping speakers, the closest pair first, while close enough. (More speakers than
    ``max_speakers`` are only ever opened by the overlap rule, so such a speaker overlaps all the others and
    never merges here: :func:`_recolor_merge` takes it.)"""
    labels = list(labels)
    while True:
        cents = _centroids(labels, emb, w)
        names = list(cents)
        clash = _clashes(labels, overlaps)
        pairs = [(float(cents[a] @ cents[b]), a, b) for k, a in enumerate(names) for b in names[k + 1 :]
                 if (a, b) not in clash and (b, a) not in clash]  # fmt: skip
        best = max(pairs, default=None)
        if best is None or best[0] < cfg.merge_threshold:
            return labels
        _, keep, gone = best
        labels = [keep if x == gone else x for x in labels]


def _recolor_merge(labels: list[str], emb: np.ndarray, w: np.ndarray, overlaps: list[list[int]],
                   cfg: ClustererConfig, pinned: Collection[int] = ()) -> list[str]:  # fmt: skip
    """Merge a small speaker (at most ``recolor_share`` of the seconds of all turns, and at most ``recolor_ratio``
    times the seconds of the other) into the nearest other speaker it overlaps, if their centroids are at least
    ``recolor_threshold`` close: every turn is then labelled again jointly (:func:`_assign`), so that turns that
    overlap still differ. One speaker at a time, the closest pair first.
    (The case this is for: a third label in a two-speaker meeting, on a turn that overlaps turns of both others,
    which the merge cannot take because each clashes.) While there are more speakers than ``max_speakers`` (the
    overlap rule opened them), any speaker merges so, whatever its share and cosine."""
    labels = list(labels)
    total = float(w.sum())
    while total > 0:
        cents = _centroids(labels, emb, w)
        over = cfg.max_speakers is not None and len(cents) > cfg.max_speakers
        if cfg.recolor_share <= 0 and not over:
            return labels
        share = {c: float(sum(w[i] for i, x in enumerate(labels) if x == c)) / total for c in cents}
        clash = _clashes(labels, overlaps)
        pairs = sorted(((float(cents[a] @ cents[b]), a, b) for a in cents for b in cents
                        if a != b and (over or (share[a] <= cfg.recolor_share and (a, b) in clash
                                                and share[a] <= cfg.recolor_ratio * share[b]))),
                       reverse=True)  # fmt: skip
        for cos, gone, keep in pairs:
            if cos < cfg.recolor_threshold and not over:
                return labels
            merged = [keep if x == gone else x for x in labels]
            relabelled = _assign(merged, emb, w, overlaps, pinned)
            if relabelled is not None:
                labels = relabelled
                break
        else:
            return labels
    return labels


def _assign(labels: list[str], emb: np.ndarray, w: np.ndarray, overlaps: list[list[int]],
            pinned: Collection[int] = ()) -> list[str] | None:  # fmt: skip
    """The labels (among those in ``labels``) that maximise the weighted cosine of each turn to its speaker's
    centroid with no two overlapping turns alike; exact, by dynamic programming over the overlap graph, which
    is a forest when at most two turns are open at any time (one per channel). A turn without audio keeps its
    label if it can, and so does a ``pinned`` turn. None when the graph has a cycle or cannot be labelled (a
    single speaker for two turns that overlap)."""
    cents = _centroids(labels, emb, w)
    names = list(cents)
    c = np.stack([cents[n] for n in names])  # (K, E)
    gain = w[:, None] * (emb @ c.T)  # (N, K)
    keep = np.asarray([[1e-6 * (n == x) for n in names] for x in labels])
    gain = np.where(w[:, None] > 0, gain, keep)
    for i in pinned:  # keeping its label outweighs anything else
        gain[i] = np.where(np.asarray(names) == labels[i], 0.0, -PIN)
    out = [""] * len(labels)
    seen = [False] * len(labels)
    for root in range(len(labels)):
        if seen[root]:
            continue
        order, parent = [], {root: -1}
        stack = [root]
        seen[root] = True
        while stack:  # depth-first, parents before children
            i = stack.pop()
            order.append(i)
            for j in overlaps[i]:
                if j == parent[i]:
                    continue
                if seen[j]:
                    return None  # a cycle
                seen[j] = True
                parent[j] = i
                stack.append(j)
        best: dict[int, np.ndarray] = {}  # node -> (K,) best total gain of its subtree for each of its labels
        for i in reversed(order):
            total = gain[i].copy()
            for j in overlaps[i]:
                if j != parent[i]:
                    total += _best_other(best[j])
            best[i] = total
        for i in order:  # top-down: each node's best label given its parent's
            score = best[i].copy()
            if parent[i] >= 0:
                score[names.index(out[parent[i]])] = -np.inf
            k = int(np.argmax(score))
            if not np.isfinite(score[k]):
                return None
            out[i] = names[k]
    return out


def _best_other(total: np.ndarray) -> np.ndarray:
    """(K,) for each label k, the best of ``total`` over the labels other than k (-inf when there is none)."""
    if len(total) < 2:
        return np.full_like(total, -np.inf)
    top = np.argsort(-total)[:2]
    out = np.full_like(total, total[top[0]])
    out[top[0]] = total[top[1]]
    return out


def _move(labels: list[str], emb: np.ndarray, w: np.ndarray, overlaps: list[list[int]],
          pinned: Collection[int] = ()) -> list[str]:  # fmt: skip
    """Each turn with audio, heaviest first, to its nearest centroid that no overlapping turn holds (the greedy
    fallback of :func:`_assign`, for an overlap graph that is not a forest)."""
    cents = _centroids(labels, emb, w)
    labels = list(labels)
    for i in sorted(range(len(labels)), key=lambda k: -w[k]):
        if w[i] <= 0 or i in pinned:
            continue
        banned = {labels[j] for j in overlaps[i]}
        allowed = [c for c in cents if c not in banned]
        if allowed:
            labels[i] = max(allowed, key=lambda c: float(emb[i] @ cents[c]))
    return labels


def _keep_names(new: list[str], old: list[str], w: np.ndarray) -> list[str]:
    """Rename the speakers of ``new`` (no more than in ``old``: revising only merges and moves) to the ``old``
    names they share the most seconds with, one to one (greedily, the largest share first)."""
    new_names, old_names = list(dict.fromkeys(new)), list(dict.fromkeys(old))
    assert len(new_names) <= len(old_names), (new_names, old_names)
    shared = np.zeros((len(new_names), len(old_names)))
    for n, o, x in zip(new, old, w, strict=True):
        shared[new_names.index(n), old_names.index(o)] += max(float(x), 1e-3)
    rename: dict[str, str] = {}
    taken: set[int] = set()
    for flat in np.argsort(-shared, axis=None, kind="stable"):
        r, c = divmod(int(flat), len(old_names))
        if new_names[r] not in rename and c not in taken:
            rename[new_names[r]] = old_names[c]
            taken.add(c)
    return [rename[n] for n in new]


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-9)
