"""The meeting simulator: sessions of 1-4 bank voices with turn-taking, pauses, backchannels and overlaps.

Guarantees (tested in tests/test_simulator.py):
- never more than two voices at once (the HEAT targets have two channels);
- the overlap share of speech is at most ``max_overlap`` (and aimed at a value drawn in the configured range);
- each reference turn is exactly the speech extent (``speech_start`` .. ``speech_end`` of the bank utterance)
  as placed in the mixture, to the sample, with the utterance's text;
- the same seed (or generator state) gives the identical session.

Layout: utterances are placed one after another. The next speaker either waits for a pause after everyone
has finished, or (while the overlap so far is below the session's target) starts before the current speaker
ends, never before everyone else has finished. Listeners may drop a backchannel ("yeah") into a long turn.
A speaker may speak faster or slower than synthesised (resampled: tempo, pitch and formants move together, so
a bank voice yields many). Then each speaker's track gets a gain and optionally a random equaliser and a
synthetic room response; noise (white, pink, babble of other bank voices, mains hum) is added at a random SNR
(or, optionally, where none is drawn, a faint white or pink noise floor as every real recording has one)
and the mixture is scaled to a random peak level; optionally it is then stored and decoded with a lossy codec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.data.audio import band_limit, vorbis_roundtrip
from model.data.bank import Bank, Utterance
from model.data.meeting import Session, Turn, activity_stats
from model.data.voices import SAMPLE_RATE

NOISE_TYPES = ("white", "pink", "babble", "hum")
# A noise floor: the faint steady hiss every real recording has (microphone self-noise, room tone), which clean
# synthetic speech (exact digital silence between words) lacks.
FLOOR_TYPES = ("white", "pink")
SAFETY = 0.01  # seconds kept between intervals that must not touch, above rounding to samples


@dataclass(frozen=True)
class SimulatorConfig:
    """How sessions are drawn. Ranges are sampled uniformly per session."""

    split: str = "train"  # bank split of the voices (and so of the sentences): "train" or "dev"
    min_speakers: int = 1  # speakers per session, drawn uniformly in [min_speakers, max_speakers]
    max_speakers: int = 4
    distinct_people: bool = False  # speakers of a session never share an engine voice (identity_of), see bank
    min_duration: float = 4.0  # seconds, session length drawn in [min_duration, max_duration]
    max_duration: float = 60.0  # (a single utterance longer than the drawn length may exceed it)
    min_overlap: float = 0.0  # share of speech with two voices, target drawn in [min_overlap, max_overlap]
    max_overlap: float = 0.4  # hard upper bound on that share (multi-speaker sessions)
    pause_mean: float = 0.5  # seconds, mean of the exponential pause between turns that do not overlap
    max_pause: float = 2.5  # seconds, longest such pause
    same_speaker_prob: float = 0.15  # chance that a speaker keeps the floor for another turn
    overlap_prob: float = 0.85  # chance to overlap a speaker change while below the target overlap
    same_family_prob: float = 0.0  # chance that a multi-speaker session's voices all come from one voice family
    backchannel_prob: float = 0.3  # chance that a listener backchannels into a turn of 1.5 s or more
    lead_silence: float = 0.5  # seconds, longest silence before the first and after the last turn
    gain_db: float = 6.0  # speaker gains drawn in [-gain_db, +gain_db] dB (plus +-1 dB per utterance)
    noise_prob: float = 0.5  # chance of additive noise
    noise_types: tuple[str, ...] = NOISE_TYPES  # kinds of noise drawn from
    snr_db: tuple[float, float] = (5.0, 30.0)  # dB, speech-to-noise ratio range
    reverb_prob: float = 0.3  # chance of reverberation (one room, a response per speaker)
    rt60: tuple[float, float] = (0.15, 0.6)  # seconds, reverberation time range
    peak_level: tuple[float, float] = (0.3, 0.95)  # range of the mixture's peak magnitude
    quiet_prob: float = 0.0  # chance that the peak is drawn from quiet_peak instead (a quiet recording)
    quiet_peak: tuple[float, float] = (0.01, 0.3)  # peak range of such a session, drawn log-uniformly
    max_tries: int = 6  # layouts drawn to land the overlap share in range before taking the closest
    speed_prob: float = 0.0  # chance that a speaker's voice is played back faster or slower (pitch and tempo)
    speed_range: tuple[float, float] = (0.9, 1.1)  # the speed factor of such a speaker, drawn in this range
    eq_prob: float = 0.0  # chance that a speaker's track passes a random smooth equaliser (microphone, line)
    eq_db: float = 6.0  # largest boost or cut of that equaliser, dB
    codec_prob: float = 0.0  # chance that the recording passes a lossy codec (Ogg Vorbis, as stored and decoded)
    codec_level: tuple[float, float] = (0.3, 1.0)  # its compression level, drawn uniformly (about 60-35 kbps)
    floor_prob: float = 0.0  # chance that a recording WITHOUT additive noise gets a faint noise floor instead
    floor_snr_db: tuple[float, float] = (30.0, 70.0)  # its speech-to-noise ratio range, dB (above snr_db's)
    band_prob: float = 0.0  # chance that the recording is narrowband: nothing above half a sample rate drawn below
    band_rates: tuple[int, int] = (8000, 12000)  # that rate, Hz: the lower end (a telephone) in half the cases,
    # else uniform in the range

    def __post_init__(self) -> None:
        assert self.split in ("train", "dev"), self.split
        assert 1 <= self.min_speakers <= self.max_speakers <= 8, (self.min_speakers, self.max_speakers)
        assert 0 < self.min_duration <= self.max_duration, (self.min_duration, self.max_duration)
        assert 0 <= self.min_overlap <= self.max_overlap < 1, (self.min_overlap, self.max_overlap)
        assert all(t in NOISE_TYPES for t in self.noise_types), self.noise_types
        assert self.snr_db[0] <= self.snr_db[1] and self.rt60[0] <= self.rt60[1], (self.snr_db, self.rt60)
        assert 0 < self.peak_level[0] <= self.peak_level[1] <= 1, self.peak_level
        assert 0 < self.quiet_peak[0] <= self.quiet_peak[1] <= 1 and 0 <= self.quiet_prob <= 1, self.quiet_peak
        assert 0 < self.speed_range[0] <= self.speed_range[1], self.speed_range
        assert 0 <= self.speed_prob <= 1 and 0 <= self.eq_prob <= 1, (self.speed_prob, self.eq_prob)
        assert 0 <= self.codec_prob <= 1 and 0 <= self.codec_level[0] <= self.codec_level[1] <= 1, self.codec_level
        assert 0 <= self.floor_prob <= 1 and self.floor_snr_db[0] <= self.floor_snr_db[1], self.floor_snr_db
        assert 0 <= self.same_family_prob <= 1, self.same_family_prob
        assert 0 <= self.band_prob <= 1 and 0 < self.band_rates[0] <= self.band_rates[1] <= SAMPLE_RATE, self.band_rates


@dataclass
class _Placed:
    speaker: int  # index into the session's voices
    utt: Utterance
    start: float  # seconds, speech start in the session
    backchannel: bool

    @property
    def end(self) -> float:
        return self.start + self.utt.speech_duration


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class MeetingSimulator:
    """Draws :class:`Session` objects from a :class:`Bank` (see the module docstring)."""

    def __init__(self, config: SimulatorConfig, bank: Bank) -> None:
        self.config = config
        self.bank = bank
        self.voices = [v for v in bank.voices(config.split)]
        assert self.voices, f"the voice bank has no {config.split} voices ({bank.root})"

    # ------------------------------------------------------------------------------------------ public

    def sample(self, rng: np.random.Generator | int | None = None, session_id: str | None = None) -> Session:
        """One session. ``rng``: a generator (advanced) or a seed; same state, same session."""
        return self.sample_with_sources(rng, session_id)[0]

    def sample_with_sources(
        self, rng: np.random.Generator | int | None = None, session_id: str | None = None
    ) -> tuple[Session, dict[str, np.ndarray]]:
        """A session and each speaker's track as mixed (gain, reverberation, final scale; no noise).

        ``session.audio == sum(tracks.values()) + noise`` (plus the coding error where a codec was drawn); tracks
        are keyed by speaker label.
        """
        cfg = self.config
        if session_id is None and isinstance(rng, int):
            session_id = f"sim-{cfg.split}-{rng}"
        rng = _as_rng(rng)
        if session_id is None:
            session_id = f"sim-{cfg.split}-{int(rng.integers(2**48)):012x}"
        n = int(rng.integers(cfg.min_speakers, cfg.max_speakers + 1))
        # one family (e.g. two natural voices) at chance same_family_prob; no draw at 0, so dev sets stay as they are
        one = cfg.same_family_prob > 0 and n > 1 and rng.random() < cfg.same_family_prob
        voices = self.bank.sample_voices(rng, cfg.split, n, cfg.distinct_people, one_family=one)
        speeds = self._speeds(rng, n)
        placed = self._layout(rng, voices, speeds)
        return self._mix(rng, session_id, voices, placed)

    # ------------------------------------------------------------------------------------------ layout

    def _speeds(self, rng: np.random.Generator, n: int) -> list[float]:
        """Each speaker's playback speed (1.0: as synthesised); draws nothing when ``speed_prob`` is 0."""
        cfg = self.config
        if cfg.speed_prob <= 0:
            return [1.0] * n
        return [float(rng.uniform(*cfg.speed_range)) if rng.random() < cfg.speed_prob else 1.0 for _ in range(n)]

    def _layout(self, rng: np.random.Generator, voices: list[str], speeds: list[float]) -> list[_Placed]:
        cfg = self.config
        best: list[_Placed] = []
        best_miss = math.inf
        for _ in range(max(1, cfg.max_tries)):
            placed = self._layout_once(rng, voices, speeds)
            if len(voices) == 1:
                return placed
            speech, overlap, _ = activity_stats([(p.start, p.end) for p in placed])
            ratio = overlap / speech if speech else 0.0
            miss = max(0.0, cfg.min_overlap - ratio, ratio - cfg.max_overlap)
            if miss < best_miss:
                best, best_miss = placed, miss
            if miss == 0.0:
                break
        return best

    def _pick(
        self,
        rng: np.random.Generator,
        voice: str,
        room: float,
        used: set[str],
        kind: str = "sentence",
        speed: float = 1.0,
    ) -> Utterance | None:
        """A random utterance of ``voice`` at ``speed``, not in ``used``, whose speech fits in ``room`` seconds."""
        pool = self.bank.utterances_of(voice, kind)
        if not pool:
            return None
        for _ in range(8):
            u = pool[int(rng.integers(len(pool)))].with_speed(speed)
            if u.speech_duration <= room and u.utt_id not in used:
                used.add(u.utt_id)
                return u
        return None

    def _layout_once(self, rng: np.random.Generator, voices: list[str], speeds: list[float]) -> list[_Placed]:
        cfg = self.config
        n = len(voices)
        length = float(rng.uniform(cfg.min_duration, cfg.max_duration))
        target = float(rng.uniform(cfg.min_overlap, cfg.max_overlap)) if n > 1 else 0.0
        talk = rng.dirichlet(np.full(n, 2.0))  # how talkative each speaker is
        first_round = list(rng.permutation(n))
        tail = float(rng.uniform(0, cfg.lead_silence))
        placed: list[_Placed] = []
        used: set[str] = set()  # utterances already in the session
        last_speaker = -1
        while True:
            if first_round:
                spk = int(first_round.pop(0))
            elif n == 1 or rng.random() < cfg.same_speaker_prob:
                spk = last_speaker
            else:
                p = talk.copy()
                p[last_speaker] = 0.0
                spk = int(rng.choice(n, p=p / p.sum()))
            end_all = max((p.end for p in placed), default=0.0)
            if not placed:
                cursor = float(rng.uniform(0, cfg.lead_silence))
            else:
                pause = min(float(rng.exponential(cfg.pause_mean)), cfg.max_pause)
                cursor = end_all + max(pause, 0.3 if spk == last_speaker else 0.05)
            utt = self._pick(rng, voices[spk], length - tail - min(cursor, end_all), used, speed=speeds[spk])
            if utt is None:
                if placed:
                    break
                pool = self.bank.utterances_of(voices[spk])
                utt = min((pool[int(rng.integers(len(pool)))] for _ in range(8)), key=lambda u: u.speech_duration)
                utt = utt.with_speed(speeds[spk])
            d = utt.speech_duration
            start = max(cursor, utt.speech_start)  # the file must not begin before the session
            if placed and spk != last_speaker and n > 1:
                speech, overlap, _ = activity_stats([(p.start, p.end) for p in placed])
                lead = max(placed, key=lambda p: p.end)  # the turn to talk over
                if lead.speaker != spk and overlap < target * speech and rng.random() < cfg.overlap_prob:
                    floor = max((p.end for p in placed if p is not lead), default=0.0) + SAFETY
                    o_cap = (target * (speech + d) - overlap) / (1 + target)
                    o_max = min(d, lead.end - floor, o_cap)
                    if o_max > 0.1:
                        o = float(rng.uniform(0.3, 1.0)) * o_max
                        start = max(lead.end - o, floor, utt.speech_start)
            if placed and start + d > length - tail:
                break
            assert _max_active(placed, start, start + d) <= 1
            placed.append(_Placed(spk, utt, start, False))
            last_speaker = spk
            if n > 1 and d >= 1.5 and rng.random() < cfg.backchannel_prob:
                self._backchannel(rng, voices, speeds, placed, placed[-1], used)
        return placed

    def _backchannel(
        self,
        rng: np.random.Generator,
        voices: list[str],
        speeds: list[float],
        placed: list[_Placed],
        turn: _Placed,
        used: set[str],
    ) -> None:
        """Drop a listener's short response into ``turn`` when it keeps to two voices and the overlap cap."""
        listeners = [i for i in range(len(voices)) if i != turn.speaker and self.bank.backchannels_of(voices[i])]
        if not listeners:
            return
        spk = listeners[int(rng.integers(len(listeners)))]
        bc = self._pick(rng, voices[spk], turn.end - turn.start - 0.5, used, "backchannel", speeds[spk])
        if bc is None:
            return
        lo, hi = turn.start + 0.3, turn.end - 0.2 - bc.speech_duration
        if hi <= lo:
            return
        start = float(rng.uniform(lo, hi))
        end = start + bc.speech_duration
        speech, overlap, _ = activity_stats([(p.start, p.end) for p in placed])
        if (overlap + bc.speech_duration) > self.config.max_overlap * speech:
            return
        if _max_active(placed, start - SAFETY, end + SAFETY) <= 1:
            placed.append(_Placed(spk, bc, start, True))

    # ------------------------------------------------------------------------------------------ mixing

    def _mix(
        self, rng: np.random.Generator, session_id: str, voices: list[str], placed: list[_Placed]
    ) -> tuple[Session, dict[str, np.ndarray]]:
        cfg, sr = self.config, SAMPLE_RATE
        placed = sorted(placed, key=lambda p: p.start)
        labels: dict[int, str] = {}  # speaker index -> label, by first turn
        for p in placed:
            labels.setdefault(p.speaker, f"S{len(labels) + 1}")
        order = sorted(labels, key=lambda i: labels[i])
        tail = float(rng.uniform(0, cfg.lead_silence))
        ends = [max(p.end + tail, p.start - p.utt.speech_start + p.utt.duration) for p in placed]
        num = int(math.ceil(max(ends) * sr)) + 1
        gains = 10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db, size=len(voices)) / 20)
        tracks = np.zeros((len(voices), num), dtype=np.float32)
        turns: list[Turn] = []
        for p in placed:
            audio = p.utt.load()
            offset = int(round((p.start - p.utt.speech_start) * sr))
            assert offset >= 0, (offset, p.start, p.utt.utt_id)
            gain = gains[p.speaker] * 10 ** (rng.uniform(-1, 1) / 20)
            tracks[p.speaker, offset : offset + len(audio)] += gain * audio[: num - offset]
            start = offset / sr + p.utt.speech_start
            turns.append(Turn(labels[p.speaker], round(start, 6), round(start + p.utt.speech_duration, 6), p.utt.text))
        meta: dict[str, Any] = {
            "voices": {labels[i]: voices[i] for i in order},
            "families": {labels[i]: self.bank.family_of(voices[i]) for i in order},
            "split": cfg.split,
            "backchannels": sum(p.backchannel for p in placed),
        }
        speeds = {labels[p.speaker]: p.utt.speed for p in placed if p.utt.speed != 1.0}
        if speeds:
            meta["speeds"] = speeds
        if cfg.eq_prob > 0:
            for i in labels:
                if rng.random() < cfg.eq_prob:
                    tracks[i] = _equalize(rng, tracks[i], cfg.eq_db)
        if rng.random() < cfg.reverb_prob:
            rt60 = float(rng.uniform(*cfg.rt60))
            for i in labels:
                tracks[i] = _reverberate(tracks[i], _room_response(rng, rt60))
            meta["rt60"] = round(rt60, 3)
        mix = tracks.sum(axis=0)
        noise = np.zeros(num, dtype=np.float32)
        if rng.random() < cfg.noise_prob and cfg.noise_types:
            kind = cfg.noise_types[int(rng.integers(len(cfg.noise_types)))]
            noise, snr = self._noise_at_snr(rng, kind, mix, turns, set(voices), cfg.snr_db)
            meta["noise"], meta["snr_db"] = kind, round(snr, 2)
        elif cfg.floor_prob > 0 and rng.random() < cfg.floor_prob:  # no draw at 0: stored dev sets stay as they are
            kind = FLOOR_TYPES[int(rng.integers(len(FLOOR_TYPES)))]
            noise, snr = self._noise_at_snr(rng, kind, mix, turns, set(voices), cfg.floor_snr_db)
            meta["floor"], meta["snr_db"] = kind, round(snr, 2)
        mix = mix + noise
        scale = _peak(rng, cfg) / max(float(np.max(np.abs(mix))), 1e-6)
        mix *= np.float32(scale)
        tracks *= np.float32(scale)
        if cfg.band_prob > 0 and rng.random() < cfg.band_prob:  # no draw at 0: stored dev sets stay as they are
            low, high = cfg.band_rates
            rate = low if rng.random() < 0.5 else int(rng.integers(low, high + 1))
            mix = band_limit(mix, rate)
            meta["band_rate"] = rate
        if cfg.codec_prob > 0 and rng.random() < cfg.codec_prob:  # no draw at 0: stored dev sets stay as they are
            level = float(rng.uniform(*cfg.codec_level))
            mix = vorbis_roundtrip(mix, level)
            meta["codec"] = f"vorbis {level:.2f}"
        speech, overlap, _ = activity_stats([(t.start, t.end) for t in turns])
        meta["overlap_ratio"] = round(overlap / speech, 4) if speech else 0.0
        session = Session(session_id, mix.astype(np.float32), turns, sr, meta)
        return session, {labels[i]: tracks[i] for i in order}

    def _noise_at_snr(
        self,
        rng: np.random.Generator,
        kind: str,
        mix: np.ndarray,
        turns: list[Turn],
        exclude: set[str],
        snr_db: tuple[float, float],
    ) -> tuple[np.ndarray, float]:
        """(len(mix),) float32 noise of ``kind`` scaled to a speech-to-noise ratio drawn uniformly in ``snr_db``
        (speech power measured over the turns of ``mix``), and that ratio in dB."""
        noise = self._noise(rng, kind, len(mix), exclude)
        snr = float(rng.uniform(*snr_db))
        noise_power = float(np.mean(noise.astype(np.float64) ** 2)) + 1e-12
        noise *= np.float32(math.sqrt(_speech_power(mix, turns) / noise_power * 10 ** (-snr / 10)))
        return noise, snr

    def _noise(self, rng: np.random.Generator, kind: str, num: int, exclude: set[str]) -> np.ndarray:
        """(num,) float32 noise of ``kind`` at an arbitrary level."""
        sr = SAMPLE_RATE
        if kind == "babble":
            others = [v for v in self.voices if v not in exclude]
            if len(others) >= 3:
                out = np.zeros(num, dtype=np.float32)
                for _ in range(int(rng.integers(3, 7))):
                    voice = others[int(rng.integers(len(others)))]
                    pool = self.bank.utterances_of(voice)
                    pos = int(rng.integers(-sr, max(1, num - sr)))  # babble keeps talking across the session
                    while pos < num:
                        audio = pool[int(rng.integers(len(pool)))].load()
                        a, b = max(pos, 0), min(pos + len(audio), num)
                        if b > a:
                            out[a:b] += audio[a - pos : b - pos] * np.float32(rng.uniform(0.5, 1.0))
                        pos += len(audio)
                return out
            kind = "pink"
        white = rng.standard_normal(num).astype(np.float32)
        if kind == "white":
            return white
        if kind == "pink":
            spec = np.fft.rfft(white)
            f = np.arange(len(spec), dtype=np.float64)
            f[0] = 1.0
            return np.fft.irfft(spec / np.sqrt(f), n=num).astype(np.float32)
        assert kind == "hum", kind
        t = np.arange(num) / sr
        base = 50.0 if rng.random() < 0.5 else 60.0
        hum = sum(
            rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
            for k in range(1, 6)
        )
        return (np.asarray(hum) + 0.05 * white).astype(np.float32)


def _max_active(placed: list[_Placed], start: float, end: float) -> int:
    """Most placed intervals active at once inside [start, end]."""
    clipped = [(max(p.start, start), min(p.end, end)) for p in placed if p.start < end and p.end > start]
    return activity_stats(clipped)[2] if clipped else 0


def _room_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A synthetic room impulse response: a direct path, then exponentially decaying noise (-60 dB at rt60)."""
    sr = SAMPLE_RATE
    n = max(int(rt60 * sr), 16)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.002 * sr)] = 0.0  # first reflections after ~2 ms
    drr_db = rng.uniform(0.0, 12.0)  # direct-to-reverberant energy ratio
    tail *= math.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail**2)), 1e-12))
    tail[0] = 1.0
    return tail.astype(np.float32)


def _equalize(rng: np.random.Generator, x: np.ndarray, max_db: float) -> np.ndarray:
    """``x`` (num_samples,) through a random zero-phase equaliser: a smooth gain curve of +-``max_db`` dB set at
    six log-spaced frequencies from 80 Hz to 8 kHz (interpolated in log frequency), and with chance 0.3 a band
    limit as of a telephone or a cheap microphone (high-pass at 100-300 Hz, low-pass at 3.4-7 kHz)."""
    size = 1 << int(math.ceil(math.log2(len(x) + SAMPLE_RATE // 10)))  # padding keeps the wrap-around off x
    f = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    anchors = np.log(np.geomspace(80.0, 8000.0, 6))
    gain = 10 ** (np.interp(np.log(np.maximum(f, 1.0)), anchors, rng.uniform(-max_db, max_db, 6)) / 20)
    if rng.random() < 0.3:
        low, high = rng.uniform(100.0, 300.0), rng.uniform(3400.0, 7000.0)
        gain = gain / np.sqrt(1 + (low / np.maximum(f, 1.0)) ** 4) / np.sqrt(1 + (f / high) ** 8)
    return np.fft.irfft(np.fft.rfft(x, size) * gain, size)[: len(x)].astype(np.float32)


def _reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir``, cut to ``len(x)`` (FFT convolution); the direct path is not delayed."""
    size = 1 << int(math.ceil(math.log2(len(x) + len(rir))))
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(rir, size), size)[: len(x)]
    return y.astype(np.float32)


def _speech_power(mix: np.ndarray, turns: list[Turn]) -> float:
    """Mean power of ``mix`` inside the turns."""
    mask = np.zeros(len(mix), dtype=bool)
    for t in turns:
        mask[int(t.start * SAMPLE_RATE) : int(t.end * SAMPLE_RATE)] = True
    sel = mix[mask] if mask.any() else mix
    return float(np.mean(sel.astype(np.float64) ** 2)) + 1e-12


def _peak(rng: np.random.Generator, cfg: SimulatorConfig) -> float:
    """The mixture's peak magnitude: uniform in ``peak_level``, or with ``quiet_prob`` log-uniform in
    ``quiet_peak`` (down to -40 dB: real recordings come at any level; the log-mel shifts with it). Without
    ``quiet_prob`` it draws exactly what it always drew, so stored dev sets regenerate unchanged."""
    if cfg.quiet_prob > 0 and rng.random() < cfg.quiet_prob:
        lo, hi = cfg.quiet_peak
        return float(lo * (hi / lo) ** rng.random())
    return float(rng.uniform(*cfg.peak_level))
