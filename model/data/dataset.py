"""Sessions made on the fly for training: a torch IterableDataset over the meeting simulator.

Session ``i`` is a pure function of (seed, i): its generator is ``np.random.default_rng([seed, i])``. Worker
``w`` of ``W`` makes sessions ``start + w, start + w + W, ...``; a DataLoader hands them out round-robin, so
the stream is the same for any number of workers, and a run resumes by passing the number of sessions it has
consumed as ``start``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from model.data.bank import Bank
from model.data.meeting import Session
from model.data.simulator import MeetingSimulator, SimulatorConfig


class MeetingDataset(IterableDataset[Session]):
    """Simulated sessions, deterministic for ``seed``.

    Args:
        bank: the voice bank (loaded once; copied into each worker).
        config: simulator settings.
        seed: data seed.
        start: index of the first session (sessions consumed so far, to resume).
        num_sessions: sessions to make from ``start`` (None: endless).
    """

    def __init__(
        self,
        bank: Bank,
        config: SimulatorConfig,
        seed: int = 0,
        start: int = 0,
        num_sessions: int | None = None,
    ) -> None:
        super().__init__()
        self.simulator = MeetingSimulator(config, bank)
        self.seed = seed
        self.start = start
        self.num_sessions = num_sessions

    def session(self, index: int) -> Session:
        """Session number ``index`` (global, independent of workers)."""
        rng = np.random.default_rng([self.seed, index])
        return self.simulator.sample(rng, session_id=f"sim-{self.simulator.config.split}-{self.seed}-{index}")

    def indices(self) -> Iterator[int]:
        """The global indices this process (or DataLoader worker) makes, in order."""
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        i = self.start + worker
        stop = None if self.num_sessions is None else self.start + self.num_sessions
        while stop is None or i < stop:
            yield i
            i += workers

    def __iter__(self) -> Iterator[Session]:
        for i in self.indices():
            yield self.session(i)

    def state_dict(self, consumed: int) -> dict[str, int]:
        """What to store in a checkpoint after ``consumed`` sessions were taken from this dataset."""
        return {"seed": self.seed, "start": self.start + consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.start = int(state["seed"]), int(state["start"])


def collate_sessions(batch: list[Session]) -> list[Session]:
    """DataLoader ``collate_fn`` that keeps sessions as a list (features are made by the model's code)."""
    return batch


__all__ = ["MeetingDataset", "collate_sessions"]
