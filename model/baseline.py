"""The one-channel baseline warm-started from a trained STS checkpoint: the same weights without the separator.

Used by the separator ablation (scripts/comparisons.sh): the bundled model and its separator-less copy are trained
on the same data for the same steps, so what differs at the end is the separator alone, not what the two models
learned before. Usage: ``python -m model.baseline SRC_CHECKPOINT OUT_DIR``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from model.checkpoint import load_model, save_model
from model.sts import StsModel

SEPARATOR_PREFIXES = ("encoder.separator.", "encoder.masks.")


def without_separator(model: StsModel) -> StsModel:
    """A one-channel model holding every weight of the two-channel ``model`` except the separator and its masks.

    The channel encoder then reads the mixture encoding itself (where it read a masked copy of it per channel).
    """
    assert model.cfg.model.num_channels == 2, "the source must be a two-channel STS model"
    cfg = replace(model.cfg, model=replace(model.cfg.model, num_channels=1), name=f"{model.cfg.name}-1ch")
    baseline = StsModel(cfg)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(SEPARATOR_PREFIXES)}
    baseline.load_state_dict(state)  # strict: every baseline weight comes from the source
    return baseline.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="two-channel checkpoint directory ('bundled' for the bundled model)")
    parser.add_argument("out", type=Path, help="directory for the one-channel checkpoint")
    args = parser.parse_args(argv)
    model = load_model(None if args.source == "bundled" else args.source)
    baseline = without_separator(model)
    out = save_model(baseline, args.out)
    print(f"wrote {out} ({sum(p.numel() for p in baseline.parameters()):,} parameters)")


if __name__ == "__main__":
    main()
