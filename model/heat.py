"""HEAT: assign reference turns to the two output channels by start time, and build channel targets.

Rule (Sklyar et al. 2022, "heuristic error assignment training"): sort the turns by start time; a turn goes to
channel 0 if channel 0 is free at its start, else to channel 1. Each turn becomes ``<sot> words <eot>`` in
its channel's target sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from model.tokenizer import encode_turn

FRAME_SECONDS = 0.04  # one encoder frame


class TurnLike(Protocol):
    @property
    def start(self) -> float: ...  # seconds

    @property
    def end(self) -> float: ...  # seconds

    @property
    def text(self) -> str: ...


def assign_channels_heat(turns: Sequence[TurnLike], num_channels: int = 2) -> list[int]:
    """Channel of each turn (in the order given), by the first-free-channel rule on start-sorted turns.

    Where every channel is busy (more overlap than channels, which the simulator never makes), the turn goes
    to the channel that frees first.
    """
    order = sorted(range(len(turns)), key=lambda i: (turns[i].start, turns[i].end))
    busy_until = [float("-inf")] * num_channels
    channel = [0] * len(turns)
    for i in order:
        turn = turns[i]
        free = [c for c in range(num_channels) if busy_until[c] <= turn.start]
        c = free[0] if free else min(range(num_channels), key=lambda k: busy_until[k])
        channel[i] = c
        busy_until[c] = max(busy_until[c], turn.end)
    return channel


@dataclass(frozen=True)
class ChannelTargets:
    """Target token ids of each channel and the reference frame of every ``<sot>`` / ``<eot>``.

    tokens[c]:     token ids of channel c: <sot> w o r d s <eot> <sot> ...
    ref_frames[c]: same length; the encoder frame (40 ms) where a <sot>/<eot> belongs, -1 for characters
    """

    tokens: tuple[tuple[int, ...], ...]
    ref_frames: tuple[tuple[int, ...], ...]


def heat_targets(turns: Sequence[TurnLike], num_channels: int = 2) -> ChannelTargets:
    """Channel target sequences for a session's reference turns."""
    channel = assign_channels_heat(turns, num_channels)
    tokens: list[list[int]] = [[] for _ in range(num_channels)]
    frames: list[list[int]] = [[] for _ in range(num_channels)]
    for i in sorted(range(len(turns)), key=lambda i: (turns[i].start, turns[i].end)):
        turn, c = turns[i], channel[i]
        ids = encode_turn(turn.text)
        tokens[c].extend(ids)
        frames[c].extend([int(turn.start / FRAME_SECONDS)] + [-1] * (len(ids) - 2) + [int(turn.end / FRAME_SECONDS)])
    return ChannelTargets(tuple(map(tuple, tokens)), tuple(map(tuple, frames)))
