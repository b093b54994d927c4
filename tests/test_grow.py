"""model.grow: residual blocks added to a trained model leave its decode unchanged, then train and stream."""

from __future__ import annotations

import numpy as np
import torch

from model.checkpoint import load_model, save_model
from model.config import StsConfig
from model.encoder import init_state
from model.grow import grow
from model.recognizer import Recognizer
from tests.test_streaming import feed, key


def test_grown_model_decodes_exactly_like_its_source(tmp_path, test_audio: np.ndarray) -> None:
    source = Recognizer.random(StsConfig.tiny(), seed=3)
    grown = grow(source.model, mixture_blocks=1, channel_blocks=2)
    assert grown.cfg.model.mixture_blocks == 1 and grown.cfg.model.channel_blocks == 2
    added = sum(p.numel() for p in grown.parameters()) - sum(p.numel() for p in source.model.parameters())
    assert added > 0
    # the saved and reloaded grown model gives the source's tokens, piece by piece as in one call
    reloaded = Recognizer(load_model(save_model(grown, tmp_path / "grown")))
    expected = source.decode_offline(test_audio)
    assert len(expected) > 20
    got = reloaded.decode_offline(test_audio)
    assert key(got) == key(expected)
    np.testing.assert_allclose([e.logprob for e in got], [e.logprob for e in expected], atol=1e-5)
    assert key(feed(reloaded, reloaded.create_stream(), test_audio, 1600)) == key(expected)
    # growing again keeps the blocks grown before (they are not reset)
    again = grow(grown, channel_blocks=1)
    assert again.cfg.model.channel_blocks == 3
    assert torch.equal(
        again.encoder.channel_blocks.lstms[0].weight_hh_l0, grown.encoder.channel_blocks.lstms[0].weight_hh_l0
    )


def test_blocks_train_and_stream_once_they_move(test_audio: np.ndarray) -> None:
    """A block whose projection is not zero changes the output, and the state carries it across chunks."""
    source = Recognizer.random(StsConfig.tiny(), seed=3)
    grown = grow(source.model, mixture_blocks=1, channel_blocks=1)
    with torch.no_grad():
        for blocks in (grown.encoder.mixture_blocks, grown.encoder.channel_blocks):
            for proj in blocks.projections:
                proj.weight.normal_(std=0.5, generator=torch.Generator().manual_seed(1))
    rec = Recognizer(grown)
    whole = rec.decode_offline(test_audio)
    assert key(whole) != key(source.decode_offline(test_audio))
    assert key(feed(rec, rec.create_stream(), test_audio, 320)) == key(whole)
    state = init_state(grown.cfg.model, 2)
    assert state.mix_h.shape[0] == grown.cfg.model.mixture_layers + 1
    assert state.chan_h.shape[:2] == (grown.cfg.model.channel_layers + 1, 4)
    # gradients reach the new blocks' LSTMs once their projections are not zero
    x = torch.randn(1, 64, grown.cfg.features.n_mels)
    out, _ = grown.train().encoder(x, init_state(grown.cfg.model, 1))
    out.square().sum().backward()
    assert grown.encoder.channel_blocks.lstms[0].weight_ih_l0.grad.abs().sum() > 0
