"""Deepen a trained STS checkpoint without changing its output: add residual LSTM blocks that start as the identity.

The small bundled model underfits (it transcribes the voices it was trained on about as badly as held-out ones),
so later stages need more capacity than it has; training a larger model from scratch would cost every CPU hour
spent so far. ``grow`` keeps every trained weight and appends ``--mixture-blocks`` blocks after the mixture
layers and ``--channel-blocks`` after the tied channel layers (:class:`model.encoder.ResidualBlocks`); their
output projections start at zero, so the grown model computes exactly what the source did until training moves
them. Usage: ``python -m model.grow SRC_CHECKPOINT OUT_DIR --mixture-blocks 1 --channel-blocks 1``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from model.checkpoint import load_model, save_model
from model.sts import StsModel


def grow(model: StsModel, mixture_blocks: int = 0, channel_blocks: int = 0, seed: int = 0) -> StsModel:
    """A copy of ``model`` with that many more identity-initialised residual blocks (the LSTMs of new blocks get
    PyTorch's default initialisation from ``seed``; existing blocks keep their weights)."""
    old = model.cfg.model
    cfg = replace(
        model.cfg,
        model=replace(
            old, mixture_blocks=old.mixture_blocks + mixture_blocks, channel_blocks=old.channel_blocks + channel_blocks
        ),
    )
    torch.manual_seed(seed)
    grown = StsModel(cfg)
    for blocks in (getattr(grown.encoder, "mixture_blocks", None), getattr(grown.encoder, "channel_blocks", None)):
        if blocks is not None:
            blocks.zero_projections()
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected, f"weights the grown model lacks: {unexpected}"
    assert all(".mixture_blocks." in k or ".channel_blocks." in k for k in missing), f"missing: {missing}"
    return grown.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="checkpoint directory ('bundled' for the bundled model)")
    parser.add_argument("out", type=Path, help="directory for the grown checkpoint")
    parser.add_argument("--mixture-blocks", type=int, default=1, help="blocks to add after the mixture layers")
    parser.add_argument("--channel-blocks", type=int, default=1, help="blocks to add after the channel layers")
    parser.add_argument("--seed", type=int, default=0, help="initialisation of the new blocks' LSTMs")
    args = parser.parse_args(argv)
    model = load_model(None if args.source == "bundled" else args.source)
    grown = grow(model, args.mixture_blocks, args.channel_blocks, args.seed)
    out = save_model(grown, args.out)
    before, after = (sum(p.numel() for p in m.parameters()) for m in (model, grown))
    print(f"wrote {out}: {before:,} -> {after:,} parameters")


if __name__ == "__main__":
    main()
