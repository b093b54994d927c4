"""A diagonal-covariance Gaussian mixture over speech frames (a "universal background model") and the
mean supervector of a span under it.

The mean MFCC of a short turn mixes who speaks with what is said: a turn full of /s/ and /i/ looks unlike one
of /a/ and /o/ from the same voice. The mixture splits the frames into K broad sound classes; a span's
statistic per class (its frames' mean, pulled towards the class mean when the class has few frames) compares
like with like. Classic GMM-supervector speaker recognition (Campbell et al., 2006), numpy only:

    ubm = DiagonalGMM.fit(frames, components=32, rng=np.random.default_rng(0))   # frames: (T, D)
    sv = ubm.supervector(span_frames)                                              # (32 * D,)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VAR_FLOOR = 1e-3  # floor of every variance, relative to the variance of all frames in that dimension


@dataclass(frozen=True, eq=False)
class DiagonalGMM:
    """K diagonal Gaussians over D-dimensional frames.

    Args:
        weights: (K,) mixture weights, summing to 1.
        means: (K, D).
        variances: (K, D), positive.
        relevance: MAP relevance factor of :meth:`supervector` (frames a class needs before its span mean
            counts as much as the prior).
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    relevance: float = 8.0

    def __post_init__(self) -> None:
        k, d = self.means.shape
        assert self.weights.shape == (k,) and self.variances.shape == (k, d), (self.weights.shape, self.variances.shape)

    @property
    def components(self) -> int:
        return int(self.means.shape[0])

    @property
    def supervector_dim(self) -> int:
        return int(self.means.size)

    def log_joint(self, x: np.ndarray) -> np.ndarray:
        """(T, D) frames -> (T, K) log(weight_k * N(x | mean_k, var_k))."""
        x = np.asarray(x, dtype=np.float64)
        inv = 1.0 / self.variances  # (K, D)
        const = np.log(self.weights) - 0.5 * (np.log(2 * np.pi * self.variances).sum(1) + (self.means**2 * inv).sum(1))
        return const[None, :] - 0.5 * (x**2) @ inv.T + x @ (self.means * inv).T

    def posteriors(self, x: np.ndarray) -> np.ndarray:
        """(T, D) frames -> (T, K) responsibility of each component for each frame (rows sum to 1)."""
        lj = self.log_joint(x)
        lj -= lj.max(axis=1, keepdims=True)
        p = np.exp(lj)
        return p / p.sum(axis=1, keepdims=True)

    def supervector(self, x: np.ndarray) -> np.ndarray:
        """(T, D) frames of one span -> (K * D,) MAP mean offsets, scaled so that the Euclidean distance of two
        supervectors bounds the KL divergence of the two adapted mixtures (Campbell et al.):
        sqrt(w_k) * (F_k - N_k * mean_k) / ((N_k + relevance) * std_k), with N_k, F_k the zeroth and first order
        statistics of component k. A span with no frame gives zeros (the prior)."""
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return np.zeros(self.supervector_dim)
        gamma = self.posteriors(x)  # (T, K)
        n = gamma.sum(0)  # (K,)
        f = gamma.T @ x  # (K, D)
        offset = (f - n[:, None] * self.means) / (n[:, None] + self.relevance)
        return (np.sqrt(self.weights)[:, None] * offset / np.sqrt(self.variances)).reshape(-1)

    @classmethod
    def fit(
        cls,
        frames: np.ndarray,
        components: int,
        rng: np.random.Generator,
        iterations: int = 20,
        relevance: float = 8.0,
    ) -> DiagonalGMM:
        """Maximum-likelihood mixture of ``components`` Gaussians on (T, D) frames by EM, started from random
        frames as means and the global variance."""
        x = np.asarray(frames, dtype=np.float64)
        assert x.ndim == 2 and len(x) >= components, (x.shape, components)
        floor = VAR_FLOOR * x.var(0) + 1e-12
        gmm = cls(
            np.full(components, 1.0 / components),
            x[rng.choice(len(x), components, replace=False)].copy(),
            np.tile(x.var(0), (components, 1)),
            relevance,
        )
        for _ in range(iterations):
            gamma = gmm.posteriors(x)
            n = gamma.sum(0) + 1e-9
            means = (gamma.T @ x) / n[:, None]
            variances = np.maximum((gamma.T @ (x**2)) / n[:, None] - means**2, floor)
            dead = n < 1e-3 * len(x) / components  # an empty component restarts on a random frame
            if dead.any():
                means[dead] = x[rng.choice(len(x), int(dead.sum()), replace=False)]
                variances[dead] = x.var(0)
            gmm = cls(n / n.sum(), means, variances, relevance)
        return gmm
