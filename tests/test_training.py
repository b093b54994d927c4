"""Training runs, saves safetensors checkpoints, and resumes exactly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from model.average import average_checkpoints
from model.batching import collate, concat
from model.checkpoint import save_model
from model.config import FeatureConfig, StsConfig
from model.features import LogMel
from model.grow import grow
from model.sts import LossConfig
from model.train import BatchMaker, TrainConfig, initial_model, train
from model.train_data import DataConfig
from tests.conftest import tone_bursts


@dataclass
class Turn:
    speaker: str
    start: float
    end: float
    text: str


@dataclass
class Session:
    audio: np.ndarray
    turns: list[Turn]


class FakeSource:
    """Deterministic sessions: tone bursts with two overlapping turns."""

    def train_batch(self, step: int, indices: Sequence[int]) -> list[Session]:
        return [self._session(step * 100 + i) for i in indices]

    def train_warps(self, step: int, indices: Sequence[int]) -> list[float]:
        return [1.0 + 0.05 * ((step + i) % 3 - 1) for i in indices]  # the warped filterbanks take part

    def dev_batches(self, size: int) -> list[list[Session]]:
        return [[self._session(10**6 + i) for i in range(size)]]

    @staticmethod
    def _session(seed: int) -> Session:
        turns = [Turn("A", 0.2, 1.5, "hello there"), Turn("B", 1.0, 2.4, "yes")]
        return Session(tone_bursts(seconds=2.5, seed=seed % 1000), turns)


def run(out: Path, steps: int, stop_at: int = 0) -> dict[str, torch.Tensor]:
    cfg = TrainConfig(out=str(out), init="scratch", steps=steps, batch_size=2, save_every=2, eval_every=2,
                      log_every=1, threads=1, warmup=2, stop_at=stop_at)  # fmt: skip
    last = train(cfg, DataConfig(), LossConfig(), StsConfig.tiny(), FakeSource())
    return load_file(str(last / "model.safetensors"))


@pytest.mark.slow
def test_resume_is_exact(tmp_path: Path) -> None:
    straight = run(tmp_path / "a", 4)
    run(tmp_path / "b", 4, stop_at=3)  # same schedule, stopped (and saved) between two save_every steps
    assert json.loads((tmp_path / "b" / "last" / "train_state.json").read_text())["step"] == 3
    resumed = run(tmp_path / "b", 4)  # picks up b/last at step 3
    assert straight.keys() == resumed.keys()
    for k in straight:
        torch.testing.assert_close(straight[k], resumed[k], rtol=0, atol=0, msg=k)
    first = load_file(str(tmp_path / "b" / "step-3" / "model.safetensors"))
    assert any(not torch.equal(first[k], resumed[k]) for k in first), "training changed nothing"
    log = (tmp_path / "a" / "log.jsonl").read_text()
    assert '"dev_loss"' in log and '"loss"' in log


@pytest.mark.slow
def test_average_of_identical_is_identity(tmp_path: Path) -> None:
    run(tmp_path / "c", 2)
    snap = tmp_path / "c" / "step-2"
    avg = average_checkpoints([snap, snap])
    ref = load_file(str(snap / "model.safetensors"))
    for k, v in avg.state_dict().items():
        torch.testing.assert_close(v, ref[k])


@pytest.mark.slow
def test_weighted_average_interpolates(tmp_path: Path) -> None:
    run(tmp_path / "d", 4)
    a, b = tmp_path / "d" / "step-2", tmp_path / "d" / "step-4"
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    mixed = average_checkpoints([a, b], [3.0, 1.0]).state_dict()  # normalised: 0.75 / 0.25
    assert any(not torch.equal(wa[k], wb[k]) for k in wa), "the two snapshots are the same"
    for k in wa:
        torch.testing.assert_close(mixed[k], 0.75 * wa[k] + 0.25 * wb[k], msg=k)
    with pytest.raises(ValueError, match="non-negative weights"):
        average_checkpoints([a, b], [1.0])
    with pytest.raises(ValueError, match="non-negative weights"):
        average_checkpoints([a, b], [1.0, -1.0])
    with pytest.raises(ValueError, match="non-negative weights"):
        average_checkpoints([a, b], [1.0, float("nan")])
    grown = tmp_path / "grown"
    save_model(grow(average_checkpoints([a]), mixture_blocks=1), grown)
    with pytest.raises(ValueError, match="another architecture"):
        average_checkpoints([a, grown])


def test_one_channel_baseline_trains(tmp_path: Path) -> None:
    tiny = StsConfig.tiny()
    cfg = TrainConfig(out=str(tmp_path / "b1"), init="scratch", steps=1, batch_size=2, save_every=1, eval_every=1,
                      threads=1, warmup=1)  # fmt: skip
    last = train(
        cfg, DataConfig(), LossConfig(), replace(tiny, model=replace(tiny.model, num_channels=1)), FakeSource()
    )
    weights = load_file(str(last / "model.safetensors"))
    assert not any(k.startswith("encoder.separator") for k in weights)


def test_baseline_warm_started_from_sts_keeps_its_weights_and_trains(tmp_path: Path) -> None:
    from model.baseline import without_separator
    from model.checkpoint import random_model, save_model
    from model.encoder import init_state

    sts = random_model(StsConfig.tiny(), seed=3)
    base = without_separator(sts)
    assert base.cfg.model.num_channels == 1
    kept = base.state_dict()
    for k, v in sts.state_dict().items():
        if k.startswith(("encoder.separator.", "encoder.masks.")):
            assert k not in kept
        else:
            torch.testing.assert_close(kept[k], v, rtol=0, atol=0, msg=k)
    # the one channel is the source's channel encoder run on the unmasked mixture encoding
    feats = torch.randn(2, 24, sts.cfg.features.n_mels)
    enc = sts.encoder
    y, _ = enc.subsampling(feats, init_state(sts.cfg.model, 2).conv)
    mix = enc.mixture(y)[0] + y
    expected = enc.channel(mix)[0] + mix
    got, _ = base.encoder(feats, init_state(base.cfg.model, 2))
    torch.testing.assert_close(got, expected)
    # and training continues from the derived checkpoint
    save_model(base, tmp_path / "base")
    cfg = TrainConfig(out=str(tmp_path / "b2"), init=str(tmp_path / "base"), steps=1, batch_size=2, save_every=1,
                      eval_every=1, threads=1, warmup=1)  # fmt: skip
    last = train(cfg, DataConfig(), LossConfig(), StsConfig.tiny(), FakeSource())
    trained = load_file(str(last / "model.safetensors"))
    assert trained.keys() == kept.keys()
    assert any(not torch.equal(trained[k], kept[k]) for k in kept), "training changed nothing"


def run_fast(out: Path, workers: int, batch_size: int = 4, loaders: int = 0) -> dict[str, torch.Tensor]:
    """Three steps at a learning rate high enough that a difference in the gradients shows in the weights."""
    cfg = TrainConfig(out=str(out), init="scratch", steps=3, batch_size=batch_size, lr=0.05, warmup=1,
                      save_every=3, eval_every=100, log_every=1, threads=1, workers=workers,
                      loaders=loaders)  # fmt: skip
    last = train(cfg, DataConfig(), LossConfig(), StsConfig.tiny(), FakeSource())
    return load_file(str(last / "model.safetensors"))


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.slow
def test_two_workers_compute_what_one_process_does(tmp_path: Path) -> None:
    one = run_fast(tmp_path / "one", 1)
    two = run_fast(tmp_path / "two", 2)
    logged = [json.loads(line)["loss"] for line in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    expected = [json.loads(line)["loss"] for line in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    assert len(logged) == 3 and np.allclose(logged, expected, rtol=1e-5)
    # Adam turns float noise in near-zero gradients into steps of up to ~lr / 50 here; a batch of half the
    # sessions (what a worker would learn from alone) moves the weights by more than lr / 2
    assert max_difference(two, one) < 2e-3
    assert max_difference(run_fast(tmp_path / "half", 1, batch_size=2), one) > 2.5e-2


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name: [state, ppid, ...] (Linux)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _workers_of(pid: int) -> list[int]:
    """Process ids of the multiprocessing children of process ``pid``."""
    kids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError):  # a process may end while it is read
            if proc.name.isdigit() and int(_stat(proc.name)[1]) == pid:
                if b"spawn_main" in (proc / "cmdline").read_bytes():
                    kids.append(int(proc.name))
    return kids


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an orphan's reaper may be slow to collect it)."""
    try:
        return _stat(pid)[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="workers follow a killed parent out on Linux only")
def test_workers_end_when_the_training_process_is_killed(tmp_path: Path) -> None:
    """SIGTERM to a training run started in the background (``nohup ... &``: SIGINT ignored, which its workers
    inherit) ends its worker processes too. torch's spawn passes the signal on to them as SIGINT, so they used to
    outlive it and go on training and writing the run's checkpoints (seen in session 31)."""
    out = tmp_path / "run"
    script = (
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"  # as a shell starts `cmd &`
        "from model.config import StsConfig\nfrom model.sts import LossConfig\n"
        "from model.train import TrainConfig, train\nfrom model.train_data import DataConfig\n"
        "from tests.test_training import FakeSource\n"
        f"cfg = TrainConfig(out={str(out)!r}, init='scratch', steps=10**6, batch_size=2, save_every=10**6, "
        "eval_every=10**6, log_every=1, threads=1, warmup=1, workers=2)\n"
        "train(cfg, DataConfig(), LossConfig(), StsConfig.tiny(), FakeSource())\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while not ((out / "log.jsonl").exists() and (out / "log.jsonl").read_text().count("\n") >= 2):
            assert proc.poll() is None, "the training run ended by itself"
            assert time.monotonic() < deadline, "the training run logged no steps"
            time.sleep(0.2)
        workers = _workers_of(proc.pid)
        assert len(workers) == 2 and all(_running(w) for w in workers)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        deadline = time.monotonic() + 30
        while any(_running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_running(w) for w in workers), "a worker outlived the killed training run"
    finally:  # nothing left running, whatever failed
        proc.kill()
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)


class UnevenSource(FakeSource):
    """Sessions of different lengths and numbers of turns."""

    @staticmethod
    def _session(seed: int) -> Session:
        turns = [Turn("A", 0.2, 1.5, "hello there"), Turn("B", 1.0, 2.4, "yes")][: 1 + seed % 2]
        return Session(tone_bursts(seconds=2.5 + 0.4 * (seed % 3), seed=seed % 1000), turns)


def test_batch_slices_joined_equal_one_collate() -> None:
    source, log_mel = UnevenSource(), LogMel(FeatureConfig())
    maker = BatchMaker(source, log_mel, channels=2, seed=3)
    whole = maker(5, range(5))
    assert len(set(whole.feat_lens.tolist())) > 1 and len(set(whole.target_lens.tolist())) > 1
    # the slices are padded to their own longest session and target, the whole to the batch's
    joined = concat([maker(5, range(0, 2)), maker(5, range(2, 3)), maker(5, range(3, 5))], num_channels=2)
    for name in ("feats", "feat_lens", "targets", "target_lens", "ref_frames"):
        torch.testing.assert_close(getattr(joined, name), getattr(whole, name), rtol=0, atol=0, msg=name)
    plain = collate(source.train_batch(5, range(5)), log_mel, 2, source.train_warps(5, range(5)))
    assert not torch.equal(whole.feats, plain.feats), "SpecAugment masked nothing"


@pytest.mark.slow
def test_loader_processes_train_what_one_thread_does(tmp_path: Path) -> None:
    threaded = run_fast(tmp_path / "thread", 1)
    pooled = run_fast(tmp_path / "pool", 1, loaders=3)
    for k in threaded:
        torch.testing.assert_close(pooled[k], threaded[k], rtol=0, atol=0, msg=k)
    waits = [json.loads(line)["data_wait"] for line in (tmp_path / "pool" / "log.jsonl").read_text().splitlines()]
    assert len(waits) == 3 and all(0.0 <= w <= 1.0 for w in waits)  # share of the run spent waiting for data
    assert max_difference(run_fast(tmp_path / "other", 1, batch_size=3, loaders=2), threaded) > 2.5e-2


def test_only_a_model_from_scratch_warms_up_the_pruned_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that starts from a trained checkpoint uses the final simple/pruned weights from its first step."""
    from model.sts import StsModel

    seen: list[object] = []  # the step argument of each training loss (dev losses pass none)
    original = StsModel.loss

    def spy(self: StsModel, *args: object) -> torch.Tensor:
        if len(args) == 7:
            seen.append(args[6])
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(StsModel, "loss", spy)
    run(tmp_path / "a", 2)
    assert seen == [0, 1]
    seen.clear()
    cfg = TrainConfig(out=str(tmp_path / "b"), init=str(tmp_path / "a" / "last"), steps=2, batch_size=2,
                      save_every=2, eval_every=2, log_every=1, threads=1, warmup=1)  # fmt: skip
    train(cfg, DataConfig(), LossConfig(), StsConfig.tiny(), FakeSource())
    assert seen == [None, None]


def test_bf16_autocast_on_a_cpu_trains_and_its_losses_track_float32(tmp_path: Path) -> None:
    """``--amp bf16``: the same three steps under bfloat16 autocast give nearly, not exactly, the float32 losses,
    and the saved weights stay float32."""

    def losses(out: Path, amp: str) -> list[float]:
        cfg = TrainConfig(out=str(out), init="scratch", steps=3, batch_size=2, lr=1e-3, warmup=1, save_every=3,
                          eval_every=100, log_every=1, threads=1, amp=amp)  # fmt: skip
        last = train(cfg, DataConfig(), LossConfig(), StsConfig.tiny(), FakeSource())
        assert all(v.dtype in (torch.float32, torch.int64) for v in load_file(str(last / "model.safetensors")).values())
        return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]

    full, half = losses(tmp_path / "fp32", "off"), losses(tmp_path / "bf16", "bf16")
    assert len(half) == 3 and all(np.isfinite(half))
    assert np.allclose(half, full, rtol=0.02), (half, full)
    assert half != full  # autocast really ran: bfloat16 rounds differently


def test_dropout_option_sets_a_started_models_dropout_and_keeps_its_weights(tmp_path: Path) -> None:
    from model.checkpoint import load_model, random_model, save_model

    tiny = StsConfig.tiny()
    cfg = replace(tiny, model=replace(tiny.model, mixture_blocks=1, channel_blocks=1))
    save_model(random_model(cfg, seed=4), tmp_path / "init")
    start = TrainConfig(out=str(tmp_path / "run"), init=str(tmp_path / "init"), dropout=0.3)
    model = initial_model(start, cfg)
    assert model.cfg.model.dropout == 0.3 and model.training
    assert model.encoder.mixture_blocks.dropout.p == 0.3 and model.encoder.dropout.p == 0.3
    kept = load_model(tmp_path / "init").state_dict()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, kept[k], rtol=0, atol=0, msg=k)
    feats = torch.randn(1, 32, cfg.features.n_mels)
    torch.manual_seed(0)
    a, b = model.encode(feats), model.encode(feats)
    assert not torch.equal(a, b), "dropout is active in training"
    model.eval()
    torch.testing.assert_close(model.encode(feats), model.encode(feats), rtol=0, atol=0)
    # a training run records it, so that resuming and bundling keep it
    run_cfg = replace(start, steps=1, batch_size=2, save_every=1, eval_every=1, log_every=1, threads=1, warmup=1)
    last = train(run_cfg, DataConfig(), LossConfig(), cfg, FakeSource())
    assert json.loads((last / "config.json").read_text())["model"]["dropout"] == 0.3
    assert initial_model(replace(start, dropout=-1.0), cfg).cfg.model.dropout == 0.0  # < 0: the model's own
