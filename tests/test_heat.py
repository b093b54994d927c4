"""HEAT channel assignment and channel target sequences."""

from __future__ import annotations

from dataclasses import dataclass

from model.heat import FRAME_SECONDS, assign_channels_heat, heat_targets
from model.tokenizer import EOT_ID, SOT_ID, decode, encode_turn


@dataclass
class T:
    start: float
    end: float
    text: str


def test_heat_overlapping_example() -> None:
    # A talks 0-4; B interrupts at 3 (ch0 busy -> ch1); C starts at 4.5 (ch0 free again -> ch0);
    # D starts at 5 while C (ch0) holds and B ended at 4.2 -> ch1; E at 9 after all ended -> ch0.
    turns = [T(0.0, 4.0, "a"), T(3.0, 4.2, "b"), T(4.5, 8.0, "c"), T(5.0, 6.0, "d"), T(9.0, 10.0, "e")]
    assert assign_channels_heat(turns) == [0, 1, 0, 1, 0]


def test_heat_sorts_by_start() -> None:
    turns = [T(5.0, 6.0, "late"), T(0.0, 5.5, "early")]
    assert assign_channels_heat(turns) == [1, 0]


def test_heat_back_to_back_reuses_channel_zero() -> None:
    turns = [T(0.0, 2.0, "x"), T(2.0, 3.0, "y"), T(3.5, 4.0, "z")]
    assert assign_channels_heat(turns) == [0, 0, 0]


def test_heat_targets_sequences_and_frames() -> None:
    turns = [T(0.0, 4.0, "hello there"), T(3.0, 4.2, "yeah"), T(4.5, 6.0, "ok")]
    tg = heat_targets(turns)
    assert list(tg.tokens[0]) == encode_turn("hello there") + encode_turn("ok")
    assert list(tg.tokens[1]) == encode_turn("yeah")
    assert decode(list(tg.tokens[0])) == "hello thereok"
    frames0 = tg.ref_frames[0]
    sot = [f for f, t in zip(frames0, tg.tokens[0], strict=True) if t == SOT_ID]
    eot = [f for f, t in zip(frames0, tg.tokens[0], strict=True) if t == EOT_ID]
    assert sot == [0, int(4.5 / FRAME_SECONDS)] and eot == [
        int(4.0 / FRAME_SECONDS),
        int(6.0 / FRAME_SECONDS),
    ]
    assert all(f == -1 for f, t in zip(frames0, tg.tokens[0], strict=True) if t not in (SOT_ID, EOT_ID))
