"""Sizes and settings of the STS model, as frozen dataclasses validated once."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class FeatureConfig:
    """Causal log-mel features."""

    sample_rate: int = 16000  # Hz; every input is resampled to this rate
    n_fft: int = 512  # FFT size in samples (the 400-sample window is zero-padded to it)
    win_length: int = 400  # analysis window in samples (25 ms)
    hop_length: int = 160  # frame shift in samples (10 ms)
    n_mels: int = 80  # mel bins
    f_min: float = 20.0  # lowest mel filter edge, Hz
    f_max: float = 7600.0  # highest mel filter edge, Hz

    def __post_init__(self) -> None:
        assert self.win_length <= self.n_fft, f"win_length {self.win_length} > n_fft {self.n_fft}"
        assert 0 < self.hop_length <= self.win_length, f"bad hop_length {self.hop_length}"
        assert self.f_max <= self.sample_rate / 2, f"f_max {self.f_max} above Nyquist"


@dataclass(frozen=True)
class ModelConfig:
    """Network sizes. Frames: 10 ms feature frames, 40 ms encoder frames."""

    vocab_size: int = 31  # blank + 26 letters + space + apostrophe + <sot> + <eot>
    subsampling: int = 4  # feature frames per encoder frame (40 ms)
    d_model: int = 320  # width of every encoder layer
    mixture_layers: int = 2  # causal LSTM layers over the mixture
    separator_layers: int = 1  # causal LSTM layers of the separator before the mask heads
    channel_layers: int = 3  # causal LSTM layers of the tied channel encoder
    mixture_blocks: int = 0  # residual LSTM blocks after the mixture layers (model.grow adds them to a trained model)
    channel_blocks: int = 0  # residual LSTM blocks after the channel layers (tied across channels like them)
    num_channels: int = 2  # output channels: 2 for STS; 1 = the one-channel baseline without separator
    decoder_dim: int = 320  # prediction-network embedding width
    context_size: int = 2  # stateless prediction network: tokens of left context
    joiner_dim: int = 320  # joiner hidden width
    dropout: float = 0.1  # dropout between encoder layers during training

    def __post_init__(self) -> None:
        assert self.num_channels in (1, 2), f"1 or 2 output channels, got {self.num_channels}"
        assert self.context_size >= 1, f"context_size must be >= 1, got {self.context_size}"
        assert self.subsampling == 4, f"only 4x subsampling is implemented, got {self.subsampling}"
        assert 0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"

    @staticmethod
    def tiny() -> ModelConfig:
        """A very small model for tests (about 100k parameters)."""
        return ModelConfig(
            d_model=32, mixture_layers=1, separator_layers=1, channel_layers=1,
            decoder_dim=32, joiner_dim=32, dropout=0.0,
        )  # fmt: skip


@dataclass(frozen=True)
class StreamingConfig:
    """How the recognizer cuts the stream into decode steps."""

    chunk_frames: int = 32  # feature frames (10 ms) per decode step: 320 ms
    max_symbols_per_frame: int = 4  # search: most tokens emitted on one encoder frame
    beam: int = 1  # hypotheses kept per channel: 1 = greedy search, more = beam search (model.beam)
    blank_penalty: float = 0.0  # search: subtracted from the blank logit (> 0: fewer deleted words)
    turn_bonus: float = 0.0  # search: added to the <sot> and <eot> logits (> 0: more turn boundaries)
    lm_weight: float = 0.0  # shallow fusion: weight of the character LM's log-probabilities (0: no LM)
    lm_bonus: float = 0.0  # shallow fusion: added to every character's score (offsets the LM's cost of a letter)
    # shallow fusion: weight of the model's internal LM (its prediction network and joiner without acoustics),
    # whose log-probabilities are subtracted from the characters' scores (internal LM estimation; needs the LM)
    ilm_weight: float = 0.0
    # beam search: most audio time (ms) a token may stay pending while the hypotheses disagree, before the best
    # hypothesis's token is committed anyway (bounds how late text and turn ends come out); 0: no bound
    max_pending_ms: int = 500
    # second pass: when a turn closes, its characters are searched again over its encoder frames (from its <sot>
    # to its <eot>, turn tokens excluded) with a beam this wide, and its final turn shows that text; 0: off
    turn_beam: int = 0

    def __post_init__(self) -> None:
        assert self.chunk_frames % 4 == 0, f"chunk_frames must be a multiple of 4, got {self.chunk_frames}"
        assert self.beam >= 1, f"beam must be at least 1, got {self.beam}"
        assert self.max_pending_ms >= 0, f"max_pending_ms must not be negative, got {self.max_pending_ms}"
        assert self.turn_beam >= 0, f"turn_beam must not be negative, got {self.turn_beam}"

    def overridden(self, **settings: float | None) -> StreamingConfig:
        """A copy with the given search settings (:data:`SEARCH_SETTINGS`); None keeps a setting as it is (for
        command-line options)."""
        unknown = set(settings) - set(SEARCH_SETTINGS)
        assert not unknown, f"not search settings: {sorted(unknown)}"
        changes: dict[str, Any] = {k: type(getattr(self, k))(v) for k, v in settings.items() if v is not None}
        return replace(self, **changes)

    def search_note(self) -> str:
        """The non-default search settings in words, e.g. ``", blank penalty 0.5, turn bonus 1.0"`` (or "")."""
        return "".join(
            f", {name.replace('_', ' ')} {getattr(self, name)}"
            for name in SEARCH_SETTINGS
            if getattr(self, name) != getattr(StreamingConfig, name)
        )


SEARCH_SETTINGS = (
    "beam", "blank_penalty", "turn_bonus", "lm_weight", "lm_bonus", "ilm_weight", "max_pending_ms", "turn_beam",
)  # fmt: skip
"""The decode-time search settings of :class:`StreamingConfig` that the command lines may override or sweep."""


def add_search_options(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--blank-penalty``, ``--turn-bonus``, ... (one float option per :data:`SEARCH_SETTINGS`, default None)."""
    for name in SEARCH_SETTINGS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None, help=help_text)


def search_overrides(args: argparse.Namespace) -> dict[str, float | None]:
    """The search options of parsed ``args`` (:func:`add_search_options`), for :meth:`StreamingConfig.overridden`."""
    return {name: getattr(args, name) for name in SEARCH_SETTINGS}


@dataclass(frozen=True)
class StsConfig:
    """Everything needed to rebuild a model from its checkpoint."""

    name: str = "sts-lstm-small"  # model name reported by the service
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> StsConfig:
        return StsConfig(
            name=d.get("name", "sts"),
            features=FeatureConfig(**d.get("features", {})),
            model=ModelConfig(**d.get("model", {})),
            streaming=StreamingConfig(**d.get("streaming", {})),
        )

    @staticmethod
    def tiny() -> StsConfig:
        return StsConfig(name="sts-tiny-random", model=ModelConfig.tiny())
