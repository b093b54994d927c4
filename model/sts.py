"""The separator-transducer-segmenter: encoder, shared prediction network and joiner, and its training loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.config import StsConfig
from model.decoder import Decoder
from model.encoder import StsEncoder, init_state
from model.joiner import Joiner
from model.pruned import prune_ranges, pruned_lattice, simple_lattice
from model.rnnt_loss import rnnt_loss, transducer_nll
from model.tokenizer import BLANK_ID


@dataclass(frozen=True)
class LossConfig:
    """Weights of the training objective."""

    latency_weight: float = 0.05  # nats per frame of <sot>/<eot> emission later than its reference frame
    latency_tolerance: int = 3  # frames (40 ms) of delay allowed without penalty
    fastemit_lambda: float = 0.0  # FastEmit regularisation (0 disables)
    prune_range: int = 5  # labels per frame in the pruned loss (model.pruned); 0 = full lattice
    simple_scale: float = 0.5  # weight of the simple (linear-joint) loss after the pruning warm-up
    ctc_weight: float = 0.3  # auxiliary CTC loss on the encoder alone (joiner output layer), speeds up learning
    prune_warmup: int = 2000  # steps over which the simple loss weight falls from 1 and the pruned from 0.1 (k2)

    def scales(self, step: int | None) -> tuple[float, float]:
        """(simple, pruned) loss weights at training ``step`` (None: after warm-up)."""
        frac = 1.0 if step is None or self.prune_warmup <= 0 else min(1.0, step / self.prune_warmup)
        return 1.0 - frac * (1.0 - self.simple_scale), 0.1 + 0.9 * frac


class StsModel(nn.Module):
    def __init__(self, cfg: StsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = StsEncoder(cfg.model, cfg.features.n_mels)
        self.decoder = Decoder(cfg.model)
        self.joiner = Joiner(cfg.model)

    def encode(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, T, 80) features (T a multiple of 4) -> (2N, T/4, joiner_dim) projected channel encodings,
        channel 0 of every item first, then channel 1."""
        enc, _ = self.encoder(feats, init_state(self.cfg.model, feats.shape[0], feats.device))
        return self.joiner.project_encoder(enc)

    def loss(
        self,
        feats: torch.Tensor,
        feat_lens: torch.Tensor,
        targets: torch.Tensor,
        target_lens: torch.Tensor,
        ref_frames: torch.Tensor,
        loss_cfg: LossConfig,
        step: int | None = None,
    ) -> torch.Tensor:
        """Summed transducer loss over both channels of every session (``step`` sets the pruning warm-up).

        Args:
            feats: (N, T, 80) log-mel, T a multiple of 4, padded after each item's end.
            feat_lens: (N,) valid feature frames.
            targets: (2N, U) channel targets, channel 0 of every item first (padded with blank).
            target_lens: (2N,) valid targets.
            ref_frames: (2N, U) reference encoder frame of each <sot>/<eot>, -1 elsewhere.
        Returns:
            (2N,) loss per channel sequence, nats.
        """
        enc = self.encode(feats)  # (2N, T', J)
        enc_lens = (feat_lens // 4).clamp(min=1).repeat(self.cfg.model.num_channels)
        dec = self.decoder(torch.nn.functional.pad(targets, (1, 0), value=BLANK_ID))  # (2N, U + 1, J)
        penalty = None
        if loss_cfg.latency_weight > 0:
            t = torch.arange(enc.shape[1], device=enc.device)[None, :, None]  # (1, T', 1)
            ref = ref_frames[:, None, :]  # (2N, 1, U)
            late = (t - ref - loss_cfg.latency_tolerance).clamp(min=0).float()
            penalty = torch.where(ref >= 0, loss_cfg.latency_weight * late, torch.zeros_like(late))
        ctc = self._ctc(enc, enc_lens, targets, target_lens) if loss_cfg.ctc_weight > 0 else 0.0
        s_range = min(loss_cfg.prune_range, dec.shape[1])
        if s_range <= 0:
            logits = self.joiner(enc[:, :, None, :], dec[:, None, :, :])  # (2N, T', U + 1, V)
            transducer = rnnt_loss(
                logits, targets, enc_lens, target_lens, blank=BLANK_ID,
                fastemit_lambda=loss_cfg.fastemit_lambda, label_penalty=penalty,
            )  # fmt: skip
            return transducer + loss_cfg.ctc_weight * ctc
        # simple lattice: the joiner's output layer on the encoder and prediction-network parts alone
        am, lm = self.joiner.out(enc), self.joiner.out(dec)
        blank_s, label_s = simple_lattice(am.float(), lm.float(), targets, BLANK_ID)
        start = prune_ranges(blank_s, label_s, enc_lens, target_lens, s_range)
        blank_p, label_p = pruned_lattice(
            self.joiner, enc, dec, targets, start, s_range, BLANK_ID, loss_cfg.fastemit_lambda
        )
        if penalty is not None:
            label_s, label_p = label_s - penalty, label_p - penalty
        simple = transducer_nll(blank_s, label_s, enc_lens, target_lens)
        pruned = transducer_nll(blank_p, label_p, enc_lens, target_lens)
        simple_scale, pruned_scale = loss_cfg.scales(step)
        return (pruned_scale * pruned + simple_scale * simple).float() + loss_cfg.ctc_weight * ctc

    def _ctc(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor
    ) -> torch.Tensor:
        """(2N,) CTC loss of the channel targets on the encoder alone (logits: the joiner's output layer)."""
        log_probs = torch.log_softmax(self.joiner.out(enc).float(), dim=-1).transpose(0, 1)  # (T', 2N, V)
        return torch.nn.functional.ctc_loss(
            log_probs, targets, enc_lens, target_lens, blank=BLANK_ID, reduction="none", zero_infinity=True
        )
