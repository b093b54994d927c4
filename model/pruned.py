"""Pruned RNN-T loss (after k2's ``rnnt_loss_pruned``), in plain PyTorch.

The full joiner over every (frame, label) node costs (N, T, U + 1, J) memory and time, which dominates CPU
training. Pruning runs it only on a band of ``S`` labels per frame:

1. A *simple* lattice whose joint is linear, ``logits(t, u) = am[t] + lm[u]``, is scored exactly and cheaply
   (its normaliser is one batched matrix product); its loss is also trained.
2. Node occupancies of the simple lattice (gradients of its loss) pick, per frame, the ``S`` consecutive labels
   that carry the most probability, made monotone and connected so that complete paths remain.
3. The real joiner runs on that band only; the band's log-probabilities are scattered into an otherwise
   "impossible" (-1e4) lattice and scored by the same recursion as the full loss.
With ``S >= U + 1`` the pruned loss equals the full loss exactly (tested).
"""

from __future__ import annotations

import torch

from model.rnnt_loss import transducer_nll

PRUNED = -1.0e4  # log-score of nodes outside the band


def simple_lattice(
    am: torch.Tensor, lm: torch.Tensor, targets: torch.Tensor, blank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blank and label log-probs of the linear joint ``am[t] + lm[u]``.

    Args:
        am: (N, T, V) encoder-only logits; lm: (N, U + 1, V) prediction-network-only logits; targets: (N, U).
    Returns:
        blank_lp (N, T, U + 1) and label_lp (N, T, U).
    """
    n, t_max, _ = am.shape
    u_max = targets.shape[1]
    am_max = am.detach().max(-1, keepdim=True).values  # (N, T, 1)
    lm_max = lm.detach().max(-1, keepdim=True).values  # (N, U + 1, 1)
    norm = torch.bmm((am - am_max).exp(), (lm - lm_max).exp().transpose(1, 2))  # (N, T, U + 1)
    norm = norm.clamp(min=1e-30).log() + am_max + lm_max.transpose(1, 2)
    blank_lp = am[:, :, blank, None] + lm[:, None, :, blank] - norm
    y = targets.long()
    am_y = am.gather(2, y[:, None, :].expand(n, t_max, u_max))  # (N, T, U): am[t, y_u]
    lm_y = lm[:, :u_max].gather(2, y[:, :, None]).squeeze(-1)  # (N, U): lm[u, y_u]
    label_lp = am_y + lm_y[:, None, :] - norm[:, :, :u_max]
    return blank_lp, label_lp


def prune_ranges(
    blank_lp: torch.Tensor,
    label_lp: torch.Tensor,
    logit_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    s_range: int,
) -> torch.Tensor:
    """First label index of each frame's band, (N, T) long, from the simple lattice's occupancies.

    The bands start at 0, never move backwards, overlap from frame to frame (start grows by at most S - 1) and
    contain the final node (T_n - 1, U_n), so the band lattice holds complete paths.
    """
    with torch.enable_grad():
        b = blank_lp.detach().double().requires_grad_(True)
        lab = label_lp.detach().double().requires_grad_(True)
        nll = transducer_nll(b, lab, logit_lengths, target_lengths).sum()
        gb, gl = torch.autograd.grad(nll, [b, lab])
    occ = -(gb + torch.nn.functional.pad(gl, (0, 1)))  # (N, T, U + 1) posterior of leaving each node
    n, t_max, u1 = occ.shape
    csum = torch.nn.functional.pad(occ.cumsum(-1), (1, 0))  # (N, T, U + 2)
    window = csum[:, :, s_range:] - csum[:, :, : u1 + 1 - s_range]  # (N, T, U + 2 - S)
    start = window.argmax(-1)  # (N, T)
    max_start = (target_lengths.long() + 1 - s_range).clamp(min=0)[:, None]  # (N, 1)
    start = torch.minimum(start, max_start)
    start = torch.cummax(start, dim=1).values
    frames = torch.arange(t_max, device=occ.device)[None, :]
    start = torch.where(frames >= logit_lengths.long()[:, None] - 1, max_start, start)
    for t in range(t_max - 2, -1, -1):  # reach the final node
        start[:, t] = torch.maximum(start[:, t], start[:, t + 1] - (s_range - 1))
    start[:, 0] = 0
    for t in range(1, t_max):  # leave the first node, stay connected
        start[:, t] = torch.minimum(start[:, t], start[:, t - 1] + (s_range - 1))
    return start


def pruned_lattice(
    joint: torch.nn.Module,
    enc: torch.Tensor,
    dec: torch.Tensor,
    targets: torch.Tensor,
    start: torch.Tensor,
    s_range: int,
    blank: int,
    fastemit_lambda: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Joiner on the band only, scattered into a full lattice.

    Args:
        joint: maps (N, T, 1, J) + (N, T, S, J) to logits (N, T, S, V).
        enc: (N, T, J) projected encoder; dec: (N, U + 1, J) prediction network; start: (N, T) band starts.
    Returns:
        blank_lp (N, T, U + 1) and label_lp (N, T, U), PRUNED outside the band.
    """
    n, t_max, j = enc.shape
    u1 = dec.shape[1]
    idx = start[:, :, None] + torch.arange(s_range, device=enc.device)  # (N, T, S), all <= U
    dec_band = dec.gather(1, idx.reshape(n, t_max * s_range, 1).expand(-1, -1, j)).reshape(n, t_max, s_range, j)
    lp = torch.log_softmax(joint(enc[:, :, None, :], dec_band).float(), dim=-1)  # (N, T, S, V)
    y = torch.nn.functional.pad(targets.long(), (0, 1), value=blank)  # (N, U + 1)
    y_band = y.gather(1, idx.reshape(n, -1)).reshape(n, t_max, s_range)
    label_band = lp.gather(-1, y_band[..., None]).squeeze(-1)
    if fastemit_lambda:
        label_band = label_band + fastemit_lambda * (label_band - label_band.detach())
    full = torch.full((n, t_max, u1), PRUNED, dtype=lp.dtype, device=lp.device)
    blank_lp = full.scatter(2, idx, lp[..., blank])
    label_lp = full.scatter(2, idx, label_band)[:, :, : u1 - 1]
    return blank_lp, label_lp
