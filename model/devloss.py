"""Held-out transducer loss of checkpoints, per session set and voice family: a smooth score for early models.

    python -m model.devloss exp/a/step-1650 exp/b/step-1650 --sets data/dev/single data/dev/meet2 data/real

While a model's word error rate still sits near 90-100 %, it moves by noise from one checkpoint to the next; the
negative log-likelihood of the reference (HEAT channel targets with ``<sot>``/``<eot>``, full transducer lattice,
no latency penalty, no auxiliary loss) falls smoothly and tells two equally trained models apart. Reported in
nats per target token, per set and per voice family (``mixed`` for meetings of several families, ``real`` for
recordings). Losses of models with a different number of channels are not comparable (their targets differ).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence

import torch

from model.batching import collate
from model.checkpoint import load_model
from model.data.meeting import read_eval_set
from model.features import LogMel
from model.sts import LossConfig, StsModel

EXACT = LossConfig(latency_weight=0.0, fastemit_lambda=0.0, prune_range=0, ctc_weight=0.0)


@torch.no_grad()
def family_losses(model: StsModel, spec: str, batch: int = 2) -> dict[str, tuple[float, int]]:
    """(summed nats, target tokens) per voice family of the sessions of one set (``DIR`` or ``DIR:SUBSET``)."""
    model.eval()
    log_mel = LogMel(model.cfg.features)
    channels = model.cfg.model.num_channels
    sessions = sorted(read_eval_set(spec), key=lambda e: len(e.session.audio))  # similar lengths share a batch
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for i in range(0, len(sessions), batch):
        chunk = sessions[i : i + batch]
        b = collate([e.session for e in chunk], log_mel, channels)
        nll = model.loss(b.feats, b.feat_lens, b.targets, b.target_lens, b.ref_frames, EXACT).view(channels, -1)
        tokens = b.target_lens.view(channels, -1).sum(0)
        for k, e in enumerate(chunk):
            out[e.family][0] += float(nll[:, k].sum())
            out[e.family][1] += int(tokens[k])
    return {f: (v[0], int(v[1])) for f, v in sorted(out.items())}


def _pooled(per_family: dict[str, tuple[float, int]], family: str) -> tuple[float, int]:
    """(nats, tokens) of one family, or of all of them for ``family == "all"``."""
    picked = list(per_family.values()) if family == "all" else [per_family[family]]
    return sum(p[0] for p in picked), sum(p[1] for p in picked)


def report(models: Sequence[str], sets: Sequence[str]) -> str:
    """A Markdown table: one row per set and family, one column per model (nats per target token)."""
    columns = []
    for path in models:
        model = load_model(path)
        columns.append({spec: family_losses(model, spec) for spec in sets})
        print(f"scored {path}", file=sys.stderr)
    rows = ["| set | family | tokens | " + " | ".join(f"`{m}`" for m in models) + " |",
            "|---|---|---|" + "---|" * len(models)]  # fmt: skip
    for spec in sets:
        for fam in [*sorted(columns[0][spec]), "all"]:
            values = [_pooled(col[spec], fam) for col in columns]
            cells = " | ".join(f"{nats / max(tokens, 1):.3f}" for nats, tokens in values)
            rows.append(f"| {spec} | {fam} | {values[0][1]} | {cells} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="checkpoint folders")
    p.add_argument("--sets", nargs="+", required=True, help="session-set folders, DIR or DIR:SUBSET")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(report(a.models, a.sets))


if __name__ == "__main__":
    main()
