"""The meeting simulator, session I/O, the training dataset and the dev set, on the tiny test bank."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from model.data.bank import Bank
from model.data.dataset import MeetingDataset, collate_sessions
from model.data.devset import SUBSETS, make_devset, stats
from model.data.meeting import (
    activity_stats,
    family_of,
    overlap_ratio,
    read_eval_set,
    read_sessions,
    to_seglst,
    write_sessions,
)
from model.data.simulator import MeetingSimulator, SimulatorConfig
from model.data.text import BACKCHANNELS
from model.data.voices import SAMPLE_RATE
from model.train_data import DataConfig, SessionSource
from tests.bank_fixture import tiny_bank_root

SR = SAMPLE_RATE
MEETING = SimulatorConfig(min_speakers=2, max_speakers=4, min_duration=15, max_duration=30, min_overlap=0.1)
CLEAN = dataclasses.replace(MEETING, noise_prob=0.0, reverb_prob=0.0, backchannel_prob=0.6)


@pytest.fixture(scope="session")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Bank:
    return Bank(tiny_bank_root(tmp_path_factory))


def test_same_seed_same_session(bank: Bank) -> None:
    sim = MeetingSimulator(MEETING, bank)
    a, b = sim.sample(7), sim.sample(np.random.default_rng(7), session_id="sim-train-7")
    assert a.session_id == b.session_id and a.turns == b.turns and a.meta == b.meta
    np.testing.assert_array_equal(a.audio, b.audio)
    assert sim.sample(8).turns != a.turns


def test_overlap_range_and_two_voices_at_most(bank: Bank) -> None:
    sim = MeetingSimulator(MEETING, bank)
    ratios = []
    for seed in range(25):
        s = sim.sample(seed)
        assert s.audio.dtype == np.float32 and s.sample_rate == SR
        assert 2 <= len(s.speakers) <= 4 and np.abs(s.audio).max() <= 1.0
        assert [t.start for t in s.turns] == sorted(t.start for t in s.turns)
        _, _, most = activity_stats([(t.start, t.end) for t in s.turns])
        assert most <= 2, s.turns
        ratio = overlap_ratio(s.turns)
        assert ratio <= MEETING.max_overlap + 1e-6, ratio
        assert s.duration <= MEETING.max_duration + 2 * MEETING.lead_silence + 0.2
        ratios.append(ratio)
    assert np.mean([r >= MEETING.min_overlap for r in ratios]) >= 0.8, ratios
    single = MeetingSimulator(dataclasses.replace(MEETING, min_speakers=1, max_speakers=1, min_duration=4), bank)
    for seed in range(5):
        s = single.sample(seed)
        assert len(s.speakers) == 1 and overlap_ratio(s.turns) == 0.0


@pytest.mark.parametrize("speed_prob", [0.0, 1.0])
def test_references_match_what_was_mixed(bank: Bank, speed_prob: float) -> None:
    """Each turn is the speech of its speaker's track, exactly; outside its turns a track is silent.
    With speed perturbation the track holds the utterance resampled, and the turn its scaled extent."""
    sim = MeetingSimulator(dataclasses.replace(CLEAN, speed_prob=speed_prob), bank)
    backchannels = 0
    for seed in range(6):
        session, tracks = sim.sample_with_sources(seed)
        np.testing.assert_allclose(sum(tracks.values()), session.audio, atol=1e-5)
        voices = session.meta["voices"]
        speeds = session.meta.get("speeds", {})
        assert (len(speeds) == len(tracks)) if speed_prob else not speeds, speeds
        for label, track in tracks.items():
            inside = np.zeros(len(track), dtype=bool)
            assert 0.9 <= speeds.get(label, 1.0) <= 1.1
            for turn in [t for t in session.turns if t.speaker == label]:
                utt = next(
                    u
                    for kind in ("sentence", "backchannel")
                    for u in (v.with_speed(speeds.get(label, 1.0)) for v in bank.utterances_of(voices[label], kind))
                    if u.text == turn.text and abs(u.speech_duration - (turn.end - turn.start)) < 1e-4
                )
                backchannels += utt.kind == "backchannel"
                offset = round((turn.start - utt.speech_start) * SR)
                # the speech extent only: the padding of a file may hold the start of the same voice's next one;
                # the decay of its previous one may still reach in, below the bank's -40 dB speech threshold
                lo, hi = round(utt.speech_start * SR), round(utt.speech_end * SR)
                audio = utt.load()[lo:hi]
                seg = track[offset + lo : offset + hi]
                gain = float(seg @ audio / (audio @ audio))
                assert gain > 0 and np.abs(seg - gain * audio).max() < 0.01 * np.abs(seg).max(), turn
                a, b = round(turn.start * SR), round(turn.end * SR)
                assert np.sqrt(np.mean(track[a:b] ** 2)) > 0.01, turn
                inside[max(0, a - int(0.06 * SR)) : b + int(0.06 * SR)] = True
            assert np.abs(track[~inside]).max(initial=0.0) < 0.02 * np.abs(track).max(), label
    assert backchannels > 0


def test_speed_perturbation_scales_time_and_pitch(bank: Bank) -> None:
    utt = bank.utterances_of(bank.voices("train")[0])[0]
    fast = utt.with_speed(1.1)
    audio, quick = utt.load(), fast.load()
    assert abs(len(quick) - len(audio) / 1.1) <= 2 and abs(fast.duration - len(quick) / SR) < 1e-3
    assert fast.speech_duration == pytest.approx(utt.speech_duration / 1.1, abs=1e-4) and fast.text == utt.text
    assert fast.with_speed(1 / 1.1).speech_duration == pytest.approx(utt.speech_duration, abs=1e-4)

    def centroid(x: np.ndarray) -> float:  # Hz, the spectrum's centre of mass
        p = np.abs(np.fft.rfft(x)) ** 2
        return float(np.fft.rfftfreq(len(x), 1 / SR) @ p / p.sum())

    assert centroid(quick) / centroid(audio) == pytest.approx(1.1, rel=0.03)


def test_equaliser_colours_each_track_and_keeps_the_layout(bank: Bank) -> None:
    plain = MeetingSimulator(CLEAN, bank)
    coloured = MeetingSimulator(dataclasses.replace(CLEAN, eq_prob=1.0), bank)
    for seed in range(3):
        (a, tracks_a), (b, tracks_b) = plain.sample_with_sources(seed), coloured.sample_with_sources(seed)
        assert a.turns == b.turns  # the equaliser is drawn after the layout and the gains
        np.testing.assert_allclose(sum(tracks_b.values()), b.audio, atol=1e-5)
        for label in tracks_a:
            bands = np.linspace(0, len(tracks_a[label]) // 2, 9).astype(int)
            spec_a, spec_b = (np.abs(np.fft.rfft(t[label])) ** 2 for t in (tracks_a, tracks_b))
            ratio_db = [10 * np.log10(spec_b[i:j].sum() / spec_a[i:j].sum()) for i, j in itertools.pairwise(bands)]
            assert np.ptp(ratio_db) > 1.0, ratio_db  # not just a gain
            inside = np.zeros(len(tracks_b[label]), dtype=bool)
            for t in b.turns:
                if t.speaker == label:
                    inside[max(0, round(t.start * SR) - int(0.06 * SR)) : round(t.end * SR) + int(0.06 * SR)] = True
            track = tracks_b[label]
            assert np.abs(track[~inside]).max(initial=0.0) < 0.02 * np.abs(track).max(), label


def test_training_source_perturbs_training_sessions_only(bank: Bank) -> None:
    """--data-speed-prob (with --data-speed-range) / --data-eq-prob / --data-quiet-prob / --data-codec-prob /
    --data-floor-prob / --data-band-prob / --data-same-family-prob reach the training simulators; dev batches stay
    as they were."""
    root = str(bank.root)
    plain = SessionSource(DataConfig(bank=root, clean_until=0, single_until=0, dev_sessions=4))
    perturbed = SessionSource(
        dataclasses.replace(
            plain.cfg,
            speed_prob=1.0,
            speed_range=0.3,
            eq_prob=1.0,
            quiet_prob=1.0,
            codec_prob=1.0,
            floor_prob=1.0,
            band_prob=1.0,
            same_family_prob=1.0,
        )
    )
    train = perturbed.train_batch(0, range(4))
    assert all(s.meta.get("speeds") and s.meta.get("codec", "").startswith("vorbis") for s in train)
    speeds = [v for s in train for v in s.meta["speeds"].values()]
    assert all(0.7 - 1e-3 <= v <= 1.3 + 1e-3 for v in speeds) and any(abs(v - 1) > 0.1 for v in speeds), speeds
    assert all(8000 <= s.meta["band_rate"] <= 12000 for s in train)
    fams = [set(s.meta["families"].values()) for s in train if 2 <= len(s.meta["families"]) <= 3]  # 3 voices a family
    assert fams and all(len(f) == 1 for f in fams)
    assert all(("noise" in s.meta) != ("floor" in s.meta) for s in train)  # a floor wherever no noise was drawn
    assert all(0.01 <= np.abs(s.audio).max() <= 0.3 + 1e-6 for s in train)  # quiet sessions
    assert all(not s.meta.get("speeds") for s in plain.train_batch(0, range(4)))
    for a, b in zip(plain.dev_batches(4)[0], perturbed.dev_batches(4)[0], strict=True):
        assert a.turns == b.turns and not {"speeds", "codec", "band_rate"} & set(b.meta)
        np.testing.assert_array_equal(a.audio, b.audio)


def test_training_source_draws_feature_warps_apart_from_the_sessions(bank: Bank) -> None:
    """--data-warp-prob: per-session VTLP factors in the range, on a 0.005 grid, a function of (step, index); the
    sessions are exactly those drawn without warping, and at 0 there are no factors at all."""
    root = str(bank.root)
    plain = SessionSource(DataConfig(bank=root, clean_until=0, single_until=0, dev_sessions=4))
    warped = SessionSource(dataclasses.replace(plain.cfg, warp_prob=1.0, warp_range=0.1))
    assert plain.train_warps(3, range(8)) is None
    warps = warped.train_warps(3, range(8))
    assert warps is not None and warps == warped.train_warps(3, range(8)) and len(set(warps)) > 1
    assert all(0.9 <= w <= 1.1 and abs(w * 200 - round(w * 200)) < 1e-9 for w in warps)
    assert warped.train_warps(3, [5]) == [warps[5]]
    for a, b in zip(plain.train_batch(3, range(2)), warped.train_batch(3, range(2)), strict=True):
        np.testing.assert_array_equal(a.audio, b.audio)
    half = SessionSource(dataclasses.replace(plain.cfg, warp_prob=0.5)).train_warps(0, range(200))
    assert half is not None and 60 < sum(w == 1.0 for w in half) < 140


def test_quiet_sessions_span_the_quiet_range_and_leave_the_rest_alone(bank: Bank) -> None:
    """quiet_prob draws the peak log-uniformly in quiet_peak; at 0 the sessions are exactly those drawn before
    the option existed (the stored dev sets regenerate unchanged)."""
    quiet = MeetingSimulator(dataclasses.replace(MEETING, quiet_prob=1.0, max_duration=16), bank)
    peaks = [float(np.abs(quiet.sample(np.random.default_rng(i)).audio).max()) for i in range(12)]
    assert min(peaks) >= 0.01 and max(peaks) <= 0.3 + 1e-6
    assert min(peaks) < 0.055 < max(peaks)  # the log-uniform draw's median; 12 draws fall on both sides
    rng = np.random.default_rng(3)
    default = MeetingSimulator(dataclasses.replace(MEETING, max_duration=16), bank).sample(np.random.default_rng(3))
    assert 0.3 - 1e-6 <= np.abs(default.audio).max() <= 0.95 + 1e-6
    again = MeetingSimulator(dataclasses.replace(MEETING, max_duration=16, quiet_peak=(0.02, 0.1)), bank).sample(rng)
    np.testing.assert_array_equal(default.audio, again.audio)


def test_codec_degrades_the_recording_only(bank: Bank) -> None:
    """codec_prob passes the finished mixture through Ogg Vorbis: same layout, length and timing (no codec
    delay), audible but bounded coding error, more of it at a higher compression level; deterministic; at 0
    nothing is drawn, so the sessions are exactly those drawn before the option existed."""
    plain = MeetingSimulator(dataclasses.replace(MEETING, max_duration=16), bank)
    for seed in range(3):
        a = plain.sample(np.random.default_rng(seed))
        errors = []
        for level in (0.0, 1.0):
            cfg = dataclasses.replace(plain.config, codec_prob=1.0, codec_level=(level, level))
            coded = MeetingSimulator(cfg, bank)
            b = coded.sample(np.random.default_rng(seed))
            assert b.turns == a.turns and len(b.audio) == len(a.audio) and b.audio.dtype == np.float32
            assert b.meta["codec"] == f"vorbis {level:.2f}"
            np.testing.assert_array_equal(b.audio, coded.sample(np.random.default_rng(seed)).audio)
            lags = range(-40, 41)  # samples; the coded audio lines up with the mixture at lag 0
            corr = [float(np.dot(a.audio[1000 + k : len(a.audio) - 1000 + k], b.audio[1000:-1000])) for k in lags]
            assert lags[int(np.argmax(corr))] == 0
            errors.append(10 * np.log10(np.mean((b.audio - a.audio) ** 2) / np.mean(a.audio**2)))
        assert -45 < errors[0] < errors[1] < -10, errors  # dB of coding error relative to the recording
    again = MeetingSimulator(dataclasses.replace(plain.config, codec_level=(0.9, 0.9)), bank)
    np.testing.assert_array_equal(plain.sample(5).audio, again.sample(5).audio)


def test_narrowband_recordings_lose_the_upper_band_only(bank: Bank) -> None:
    """band_prob makes the finished mixture narrowband: the rate drawn (8 kHz in about half the sessions, else
    8-12 kHz) leaves nothing above its half, the band below it is the mixture's, timing is unchanged; at 0
    nothing is drawn, so the sessions are exactly those drawn before the option existed."""
    plain = MeetingSimulator(dataclasses.replace(MEETING, max_duration=16), bank)
    narrow = MeetingSimulator(dataclasses.replace(plain.config, band_prob=1.0), bank)
    rates = []
    for seed in range(8):
        a, b = plain.sample(np.random.default_rng(seed)), narrow.sample(np.random.default_rng(seed))
        assert b.turns == a.turns and len(b.audio) == len(a.audio) and b.audio.dtype == np.float32
        rate = b.meta["band_rate"]
        rates.append(rate)
        assert 8000 <= rate <= 12000
        spec_a, spec_b = (np.abs(np.fft.rfft(x.astype(np.float64))) ** 2 for x in (a.audio, b.audio))
        hz = np.fft.rfftfreq(len(a.audio), 1 / 16000)
        above, below = hz > rate / 2 + 200, hz < rate / 2 - 500
        assert spec_b[above].sum() < 1e-4 * spec_a[above].sum(), "the upper band is gone (below -40 dB)"
        assert 0.95 < spec_b[below].sum() / spec_a[below].sum() < 1.05, "the lower band is kept"
        lags = range(-40, 41)  # samples; the narrowband audio lines up with the mixture at lag 0
        corr = [float(np.dot(a.audio[1000 + k : len(a.audio) - 1000 + k], b.audio[1000:-1000])) for k in lags]
        assert lags[int(np.argmax(corr))] == 0
    assert rates.count(8000) >= 2 and any(r != 8000 for r in rates), rates
    np.testing.assert_array_equal(plain.sample(5).audio, MeetingSimulator(dataclasses.replace(
        plain.config, band_rates=(11025, 11025)), bank).sample(5).audio)  # fmt: skip


def test_noise_floor_fills_only_the_recordings_without_noise(bank: Bank) -> None:
    """floor_prob adds white or pink noise at 30-70 dB SNR to the sessions that drew no additive noise, and to
    nothing else; at 0 nothing is drawn, so the sessions are exactly those drawn before the option existed."""
    plain = MeetingSimulator(dataclasses.replace(MEETING, max_duration=16, noise_prob=0.5), bank)
    floored = MeetingSimulator(dataclasses.replace(plain.config, floor_prob=1.0), bank)
    kinds = []
    for seed in range(8):
        a, a_tracks = plain.sample_with_sources(np.random.default_rng(seed))
        b, b_tracks = floored.sample_with_sources(np.random.default_rng(seed))
        assert b.turns == a.turns and len(b.audio) == len(a.audio)
        if "noise" in a.meta:
            assert "floor" not in b.meta and b.meta["noise"] == a.meta["noise"]
            np.testing.assert_array_equal(a.audio, b.audio)
            continue
        kinds.append(b.meta["floor"])
        assert b.meta["floor"] in ("white", "pink") and 30.0 <= b.meta["snr_db"] <= 70.0, b.meta
        floor = b.audio - sum(b_tracks.values())
        speech = np.concatenate([b.audio[int(t.start * 16000) : int(t.end * 16000)] for t in b.turns])
        snr = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(floor.astype(np.float64) ** 2))
        assert abs(snr - b.meta["snr_db"]) < 1.5, (snr, b.meta)  # measured over the turns, as drawn
        assert np.all(floor[np.abs(sum(a_tracks.values())) == 0] != 0), "no digital silence left"
    assert kinds, "some of 8 sessions drew no additive noise at noise_prob 0.5"
    np.testing.assert_array_equal(plain.sample(5).audio, MeetingSimulator(dataclasses.replace(
        plain.config, floor_snr_db=(40.0, 40.0)), bank).sample(5).audio)  # fmt: skip


def test_backchannels_are_short_turns_inside_others(bank: Bank) -> None:
    sim = MeetingSimulator(CLEAN, bank)
    found = 0
    for seed in range(10):
        s = sim.sample(seed)
        for t in s.turns:
            if t.text in BACKCHANNELS:
                found += 1
                assert any(o.speaker != t.speaker and o.start < t.start and t.end < o.end for o in s.turns), t
    assert found > 0


def test_same_family_sessions_draw_their_voices_from_one_family(bank: Bank) -> None:
    """same_family_prob 1: a multi-speaker session's voices share the first voice's family while it has voices
    (the tiny bank has three train voices per family); at 0 nothing is drawn, so the sessions are exactly those
    drawn before the option existed."""
    two_three = dataclasses.replace(MEETING, max_speakers=3)
    plain = MeetingSimulator(two_three, bank)
    one = MeetingSimulator(dataclasses.replace(two_three, same_family_prob=1.0), bank)
    assert sum(len(set(plain.sample(k).meta["families"].values())) > 1 for k in range(12)) >= 4
    assert all(len(set(one.sample(k).meta["families"].values())) == 1 for k in range(12))
    rng = np.random.default_rng(0)
    assert len({bank.family_of(v) for v in bank.sample_voices(rng, "train", 5, one_family=True)}) == 2  # falls back
    again = MeetingSimulator(dataclasses.replace(two_three, same_family_prob=0.0), bank)
    assert [plain.sample(k).turns for k in range(5)] == [again.sample(k).turns for k in range(5)]


def test_session_io_and_seglst(bank: Bank, tmp_path: Path) -> None:
    sim = MeetingSimulator(MEETING, bank)
    sessions = [sim.sample(i) for i in range(3)]
    write_sessions(tmp_path, sessions)
    back = list(read_sessions(tmp_path))
    assert [s.session_id for s in back] == [s.session_id for s in sessions]
    for a, b in zip(sessions, back, strict=True):
        assert a.turns == b.turns and a.meta == b.meta
        np.testing.assert_allclose(a.audio, b.audio, atol=1.5 / 32768)
    seg = to_seglst(sessions[0])
    assert set(seg[0]) == {"session_id", "speaker", "start_time", "end_time", "words"}
    assert len(seg) == len(sessions[0].turns)
    assert (tmp_path / "seglst.json").exists()
    # as an evaluation set: a family per session, a subset filter, a limit
    evals = read_eval_set(str(tmp_path))
    assert [e.family for e in evals] == [family_of(s) for s in sessions] and all(e.score_words for e in evals)
    assert all(e.family in {"espeak", "flite", "festival", "mixed"} for e in evals)
    assert len(read_eval_set(str(tmp_path), limit=2)) == 2 and read_eval_set(f"{tmp_path}:nosuchsubset") == []


def test_dataset_is_deterministic_and_resumable(bank: Bank) -> None:
    cfg = dataclasses.replace(MEETING, min_duration=4, max_duration=8)
    ds = MeetingDataset(bank, cfg, seed=3, num_sessions=6)
    plain = list(ds)
    assert len(plain) == 6 and len({s.session_id for s in plain}) == 6
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=collate_sessions)
    assert [s.session_id for s in loader] == [s.session_id for s in plain]
    resumed = MeetingDataset(bank, cfg, seed=3, start=4, num_sessions=2)
    assert [s.turns for s in resumed] == [s.turns for s in plain[4:]]
    np.testing.assert_array_equal(next(iter(resumed)).audio, plain[4].audio)


def test_devset_uses_dev_voices_only(bank: Bank) -> None:
    dev = make_devset(bank, sessions=2, seed=0)
    assert set(dev) == set(SUBSETS) == {"single", "meet2", "meet3-4"}
    dev_voices = set(bank.voices("dev"))
    for name, sessions in dev.items():
        for s in sessions:
            assert set(s.meta["voices"].values()) <= dev_voices
            assert s.meta["split"] == "dev"
        n = [len(s.speakers) for s in sessions]
        assert (name == "single") == all(k == 1 for k in n), (name, n)
        assert stats(sessions)["sessions"] == 2
