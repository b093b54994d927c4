"""Train the STS model on simulated meetings made on the fly.

    python -m model.train --out exp/sts --workers 2 --threads 1 --data-bank data/bank --steps 20000

On a CPU, ``--workers N`` runs N processes of one thread each that share every batch (about 1.5x the audio per
second of one process on two cores); on a GPU, one process with bfloat16 autocast (``--amp bf16`` uses it on a CPU
too: faster where the CPU has AVX-512 BF16, see ``python -m model.benchmark``) and ``--loaders N`` processes that
simulate the coming batches on the machine's other cores (``scripts/device_train.sh`` runs it on a lent GPU).

Resumes exactly from ``<out>/last`` when it exists (model, optimizer, data position, RNG); otherwise starts
from the bundled model (``--init bundled``, the default when one exists) or from scratch (``--init scratch``);
only a run from scratch warms up the pruned loss (``--loss-prune-warmup``). ``--dropout P`` sets the encoder's
dropout for a new run, from the bundled model too (stages 1-16 trained with none); it stays in the run's config.
Snapshots ``<out>/step-N`` are kept for checkpoint averaging (``python -m model.average``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from model.batching import Batch, SessionLike, SpecAugment, collate, concat, feature_stats
from model.checkpoint import BUNDLED_DIR, WEIGHTS, load_config, load_model
from model.config import StsConfig
from model.features import LogMel
from model.sts import LossConfig, StsModel
from model.train_data import DataConfig, SessionSource
from model.train_state import load_training, save_training


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping settings of one training run."""

    out: str = "exp/sts"  # run folder: last/, step-N/ snapshots, log.jsonl
    init: str = "auto"  # "auto" (bundled model if present, else scratch), "bundled", "scratch" or a checkpoint dir
    steps: int = 20000  # total optimizer steps (counted across resumptions)
    batch_size: int = 8  # sessions per step
    lr: float = 1.5e-3  # peak learning rate (AdamW)
    warmup: int = 300  # linear warm-up steps
    min_lr_ratio: float = 0.05  # cosine decay floor, as a fraction of lr
    weight_decay: float = 1e-2  # AdamW weight decay
    grad_clip: float = 5.0  # gradient-norm clip
    save_every: int = 200  # steps between resumable checkpoints (and snapshots)
    keep_snapshots: int = 5  # snapshots kept for averaging
    eval_every: int = 400  # steps between dev-loss evaluations
    log_every: int = 20  # steps between log lines
    threads: int = 2  # torch intra-op threads
    seed: int = 0  # data and augmentation seed
    max_minutes: float = 0.0  # stop (after saving) when this much wall time has passed; 0 = no limit
    stop_at: int = 0  # stop (after saving) at this step, keeping the schedule of ``steps``; 0 = run to ``steps``
    workers: int = 1  # processes sharing each batch (CPU data parallelism; one thread each works best)
    amp: str = "auto"  # bfloat16 autocast: "auto" (on a GPU only), "bf16" (on a CPU too), "off"
    loaders: int = 0  # processes simulating coming batches (0: one thread of this process); for a GPU's many cores
    dropout: float = -1.0  # encoder dropout while training (kept in the model's config); < 0: the initial model's


def use_autocast(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether the forward pass runs under bfloat16 autocast (the losses are summed in float32 either way)."""
    assert cfg.amp in ("auto", "bf16", "off"), f"--amp must be auto, bf16 or off, got {cfg.amp!r}"
    return cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")


def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def resolve_init(cfg: TrainConfig) -> str:
    """``cfg.init`` with "auto" resolved: "bundled" when a bundled model exists, else "scratch"."""
    if cfg.init == "auto":
        return "bundled" if (BUNDLED_DIR / WEIGHTS).exists() else "scratch"
    return cfg.init


def initial_model(cfg: TrainConfig, model_cfg: StsConfig) -> StsModel:
    """The model a new run starts from, with ``cfg.dropout`` (when >= 0) in place of its own encoder dropout."""
    init = resolve_init(cfg)
    if init == "scratch":
        torch.manual_seed(cfg.seed)
        return StsModel(with_dropout(model_cfg, cfg.dropout))
    model = load_model(None if init == "bundled" else init)
    if cfg.dropout >= 0 and cfg.dropout != model.cfg.model.dropout:
        weights = model.state_dict()
        model = StsModel(with_dropout(model.cfg, cfg.dropout))  # dropout has no weights: the same ones fit
        model.load_state_dict(weights)
    return model.train()


def with_dropout(model_cfg: StsConfig, dropout: float) -> StsConfig:
    """``model_cfg`` with its encoder dropout set to ``dropout``; unchanged when ``dropout`` < 0."""
    if dropout < 0:
        return model_cfg
    return replace(model_cfg, model=replace(model_cfg.model, dropout=dropout))


def dev_loss(model: StsModel, batches: list[Batch], loss_cfg: LossConfig) -> float:
    """Mean transducer loss per target token over fixed dev batches."""
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for b in batches:
            total += float(model.loss(b.feats, b.feat_lens, b.targets, b.target_lens, b.ref_frames, loss_cfg).sum())
            tokens += int(b.target_lens.sum()) + int(b.feat_lens.sum()) // 4
    model.train()
    return total / max(1, tokens)


class Source(Protocol):
    def train_batch(self, step: int, indices: Sequence[int]) -> Sequence[SessionLike]:
        """Sessions ``indices`` of step ``step``'s batch (each a function of step and index alone)."""
        ...

    def train_warps(self, step: int, indices: Sequence[int]) -> Sequence[float] | None:
        """VTLP factors of those sessions' features (``collate``), or None for none."""
        ...

    def dev_batches(self, size: int) -> Sequence[Sequence[SessionLike]]: ...


def train(
    cfg: TrainConfig, data_cfg: DataConfig, loss_cfg: LossConfig, model_cfg: StsConfig, source: Source | None = None
) -> Path:
    """Run (or resume) training; returns the folder of the last checkpoint.

    With ``cfg.workers > 1`` that many processes (CPU, gloo) share every batch: worker ``r`` takes sessions
    ``r, r + workers, ...`` of the step's batch, and the gradients of the whole batch's loss are summed across
    workers before the (identical) optimizer step, so a run computes what one process would, in less time.
    """
    if cfg.workers <= 1:
        return _train(cfg, data_cfg, loss_cfg, model_cfg, source)
    if torch.cuda.is_available():
        raise ValueError("--workers > 1 is for CPU training (one process per core); on a GPU use one worker")
    with socket.socket() as sock:  # a free loopback port for the process group
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torch.multiprocessing.spawn(
        _worker, args=(os.getpid(), port, cfg, data_cfg, loss_cfg, model_cfg, source), nprocs=cfg.workers, join=True
    )
    return Path(cfg.out) / "last"


def _die_with(parent: int) -> None:
    """End this process when process ``parent`` ends (Linux; elsewhere nothing): a worker or loader that outlived a
    killed ``model.train`` would go on training, or feeding nothing, and write the run's checkpoints under a resumed
    run's feet. Ctrl-C reaches the whole process group; ``kill`` or a job scheduler's SIGTERM reaches the parent
    only."""
    if sys.platform != "linux":
        return
    pr_set_pdeathsig = 1  # <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent ended before the request took hold
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(
    rank: int,
    parent: int,
    port: int,
    cfg: TrainConfig,
    data_cfg: DataConfig,
    loss_cfg: LossConfig,
    model_cfg: StsConfig,
    source: Source | None,
) -> None:
    _die_with(parent)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=cfg.workers)
    try:
        _train(cfg, data_cfg, loss_cfg, model_cfg, source, rank)
        # every rank done before any tears its connections down: a rank whose peer closed the group under it
        # could abort ("terminate called without an active exception", seen once in a test run)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _sum_across_workers(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over every worker (itself when training in one process)."""
    if dist.is_initialized():
        dist.all_reduce(values)
    return values


def _train(
    cfg: TrainConfig,
    data_cfg: DataConfig,
    loss_cfg: LossConfig,
    model_cfg: StsConfig,
    source: Source | None = None,
    rank: int = 0,
) -> Path:
    """The training loop of one process; worker 0 (the only one by default) logs, evaluates and saves."""
    torch.set_num_threads(cfg.threads)
    lead = rank == 0
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    last = out / "last"
    model = StsModel(load_config(last)) if last.exists() else initial_model(cfg, model_cfg)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    audio_seen = 0.0  # seconds of training audio over the whole run, resumptions included
    if last.exists():
        info = load_training(last, model, opt)
        step = int(info["step"])
        audio_seen = float(info.get("audio_seen", 0.0))
        if lead:
            print(f"resumed from {last} at step {step}", file=sys.stderr)
    if lead:
        (out / "run_config.json").write_text(
            json.dumps({"train": asdict(cfg), "data": asdict(data_cfg), "loss": asdict(loss_cfg)}, indent=2)
        )
    log_mel = LogMel(model.cfg.features)
    source = source or SessionSource(data_cfg, seed=cfg.seed)
    channels = model.cfg.model.num_channels
    dev_batches = [collate(chunk, log_mel, channels) for chunk in source.dev_batches(cfg.batch_size)] if lead else []
    scratch = resolve_init(cfg) == "scratch"
    if not last.exists() and scratch:
        # a new model: estimate its feature normalisation on training sessions (rng keys apart from any step's)
        every = range(cfg.batch_size)
        stats = [collate(source.train_batch(10**8 + i, every), log_mel, channels) for i in range(8)]
        mean, std = feature_stats(stats)
        model.encoder.subsampling.feature_mean.copy_(mean.to(device))
        model.encoder.subsampling.feature_std.copy_(std.to(device))
        if lead:
            print(f"feature normalisation from {len(stats) * cfg.batch_size} sessions", file=sys.stderr)
    params = sum(p.numel() for p in model.parameters())
    if lead:
        print(f"model {model.cfg.name}: {params / 1e6:.2f}M parameters on {device}, {cfg.workers} worker(s)",
              file=sys.stderr)  # fmt: skip
    use_amp = use_autocast(cfg, device)
    t_start = time.time()
    audio_seconds = 0.0
    log = (out / "log.jsonl").open("a") if lead else None
    bar = tqdm(total=cfg.steps, initial=step, desc="train", dynamic_ncols=True, mininterval=5, disable=not lead)
    running = 0.0
    mine = range(rank, cfg.batch_size, cfg.workers)  # this worker's share of every batch
    batches = _batches_ahead(cfg, BatchMaker(source, log_mel, channels, cfg.seed), mine, step)
    waited = 0.0  # seconds this run spent waiting for batches (the loaders are too slow when it is a large share)
    while step < cfg.steps:
        t_wait = time.time()
        batch = next(batches).to(device)
        waited += time.time() - t_wait
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        tokens = int(batch.target_lens.sum()) + int(batch.feat_lens.sum()) // 4
        size = torch.tensor([tokens, batch.audio_seconds], dtype=torch.float64)  # exact counts, not float32
        norm_by, batch_seconds = _sum_across_workers(size).tolist()
        # the pruned loss places its band with the simple joiner, so it is warmed up (LossConfig.prune_warmup) only
        # when the model starts untrained; a model that starts trained gets the final loss weights from step 0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            losses = model.loss(
                batch.feats,
                batch.feat_lens,
                batch.targets,
                batch.target_lens,
                batch.ref_frames,
                loss_cfg,
                step if scratch else None,
            )
        loss = losses.sum() / max(1.0, norm_by)  # this worker's share of the batch's loss per token+frame
        opt.zero_grad(set_to_none=True)
        loss.backward()
        loss_value = _reduce_gradients(model, loss.detach())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        if math.isfinite(grad_norm):
            opt.step()
        step += 1
        audio_seconds += batch_seconds
        audio_seen += batch_seconds
        running = 0.95 * running + 0.05 * loss_value if step > 1 else loss_value
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}", lr=f"{lr_at(cfg, step):.2e}")
        elapsed = time.time() - t_start
        if log is not None and step % cfg.log_every == 0:
            rec = {"step": step, "loss": loss_value, "smoothed": running, "grad_norm": grad_norm,
                   "lr": lr_at(cfg, step), "audio_per_second": audio_seconds / max(elapsed, 1e-9),
                   "audio_seen": audio_seen, "data_wait": waited / max(elapsed, 1e-9)}  # fmt: skip
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if log is not None and step % cfg.eval_every == 0 and dev_batches:
            dl = dev_loss(model, [b.to(device) for b in dev_batches], loss_cfg)
            log.write(json.dumps({"step": step, "dev_loss": dl}) + "\n")
            log.flush()
            tqdm.write(f"step {step}: dev loss {dl:.4f} per token+frame")
        # every worker stops at the same step: worker 0's clock decides
        out_of_time = cfg.max_minutes > 0 and elapsed > cfg.max_minutes * 60 and lead
        stop = bool(_sum_across_workers(torch.tensor([float(out_of_time)]))) or step == cfg.stop_at
        if lead and (step % cfg.save_every == 0 or step == cfg.steps or stop):
            info = {"step": step, "seed": cfg.seed, "audio_seen": audio_seen}
            save_training(last, model, opt, info)
            save_training(out / f"step-{step}", model, opt, info)
            snaps = sorted(out.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
            for old in snaps[: -cfg.keep_snapshots]:
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
        if stop:
            if lead:
                tqdm.write(f"stopping at step {step} after {elapsed / 60:.1f} minutes")
            break
    bar.close()
    batches.close()
    return last


@dataclass(frozen=True)
class BatchMaker:
    """Makes a part of a step's training batch: simulated sessions, features and SpecAugment, each session a
    function of the step and its index in the batch alone (so any split of a batch gives the same sessions)."""

    source: Source
    log_mel: LogMel
    channels: int
    seed: int

    def __call__(self, at: int, indices: Sequence[int]) -> Batch:
        gens = [torch.Generator().manual_seed((self.seed * 1_000_003 + at) * 1009 + i) for i in indices]
        sessions = self.source.train_batch(at, indices)
        return SpecAugment()(collate(sessions, self.log_mel, self.channels, self.source.train_warps(at, indices)), gens)


_LOADER: BatchMaker | None = None  # a loader process's maker (``_batches_ahead``)


def _loader_start(maker: BatchMaker, parent: int) -> None:
    global _LOADER
    _die_with(parent)
    torch.set_num_threads(1)
    _LOADER = maker


def _loader_make(at: int, indices: Sequence[int]) -> Batch:
    assert _LOADER is not None, "loader process not started"
    return _LOADER(at, indices)


def _batches_ahead(cfg: TrainConfig, maker: BatchMaker, mine: Sequence[int], start: int) -> Generator[Batch]:
    """This worker's batch (sessions ``mine``) of every step from ``start`` to ``cfg.steps``, made ahead in the
    background while the current step trains.

    With ``cfg.loaders == 0`` one thread makes the next step's batch (numpy and torch release the GIL for most
    of their work). With ``cfg.loaders = L`` that many processes each make a contiguous slice of every batch,
    two steps ahead, and the slices are joined (``concat``): the batch is the same as one thread's, only sooner.
    """
    if cfg.loaders <= 0:
        with ThreadPoolExecutor(max_workers=1) as thread:
            pending = thread.submit(maker, start, mine)
            for at in range(start, cfg.steps):
                batch = pending.result()
                if at + 1 < cfg.steps:
                    pending = thread.submit(maker, at + 1, mine)
                yield batch
        return
    size = -(-len(mine) // cfg.loaders)
    slices = [mine[k : k + size] for k in range(0, len(mine), size)]
    # spawned, not forked: the parent may already hold a CUDA context
    pool = ProcessPoolExecutor(
        cfg.loaders,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_loader_start,
        initargs=(maker, os.getpid()),
    )
    queue: deque[list[Future[Batch]]] = deque()
    try:
        for at in range(start, cfg.steps):
            while len(queue) < 3 and at + len(queue) < cfg.steps:
                queue.append([pool.submit(_loader_make, at + len(queue), part) for part in slices])
            yield concat([part.result() for part in queue.popleft()], maker.channels)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _reduce_gradients(model: nn.Module, loss: torch.Tensor) -> float:
    """Sum every worker's gradients (and loss shares) in one all-reduce; returns the whole batch's loss."""
    if not dist.is_initialized():
        return float(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.reshape(1).to(grads[0].dtype)])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
    return float(flat[-1])


def _add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    for f in fields(cls):
        default = f.default
        kind = type(default) if default is not None else str
        parser.add_argument(f"--{prefix}{f.name.replace('_', '-')}", type=kind, default=default)


def _from_args(args: argparse.Namespace, cls: type, prefix: str = "") -> object:
    return cls(**{f.name: getattr(args, (prefix + f.name).replace("-", "_")) for f in fields(cls)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_dataclass_args(parser, TrainConfig)
    _add_dataclass_args(parser, DataConfig, "data-")
    _add_dataclass_args(parser, LossConfig, "loss-")
    parser.add_argument("--model-config", default=None, help="JSON config for a model trained from scratch")
    args = parser.parse_args(argv)
    model_cfg = StsConfig()
    if args.model_config:
        model_cfg = StsConfig.from_dict(json.loads(Path(args.model_config).read_text()))
    train_cfg = _from_args(args, TrainConfig)
    data_cfg = _from_args(args, DataConfig, "data_")
    loss_cfg = _from_args(args, LossConfig, "loss_")
    assert isinstance(train_cfg, TrainConfig) and isinstance(data_cfg, DataConfig) and isinstance(loss_cfg, LossConfig)
    train(train_cfg, data_cfg, loss_cfg, model_cfg)


if __name__ == "__main__":
    main()
