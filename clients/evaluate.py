"""Evaluate a model the way it serves: streaming decode, turn assembly, then meeteval scores.

    sts-eval --model model/pretrained data/dev/single data/dev/meet2 data/real:single --out exp/eval

Each set is a folder with ``sessions.jsonl`` (``session_id``, ``audio`` relative to the folder, ``turns`` of
``speaker, start, end, text``; optional ``meta.families``, ``subset`` and ``wer``), as written by
``model.data.devset`` and ``model.data.realspeech``; ``DIR:SUBSET`` keeps the sessions of one subset.
Audio goes through ``Stream.accept_waveform`` in 320 ms pieces and ``decode_streams`` batches many sessions,
exactly as the service does; the turns come from the service's :class:`TurnAssembler`.

Reported per set (and per voice family, per overlap bin of multi-speaker simulated sessions, and per level of
the noise the simulator added): WER
(single-speaker sets), ORC-WER and cpWER (meeteval; speaker labels revised at the end of the stream, as REST
gives them, and "live" as first given), turn counts (found / reference), speaker count accuracy and DER of the
labelled turns, ``<sot>``/``<eot>`` time minus reference start/end (median, p90) for reference turns matched
to the hypothesis turn that overlaps them most, word emission latency, and the decode real-time factor; and the
character error rate (CER) of single-speaker sessions. Word latency is the stream time (seconds of audio sent
so far) at which a correctly recognised word first came out, in a partial or a final turn, minus the word's
reference end; words are matched by alignment inside each matched turn pair, and reference word ends are
approximate (the turn's span shared by character counts; the simulator keeps no word times).
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.char_lm import CharNgram
from model.checkpoint import checkpoint_dir, load_model
from model.config import SEARCH_SETTINGS, add_search_options, search_overrides
from model.data.audio import add_noise_floor, band_limit, vorbis_roundtrip
from model.data.meeting import read_eval_set
from model.lexicon import Lexicon
from model.recognizer import Recognizer, TokenEvent, set_num_threads
from model.report import group_rows, publish
from model.speaker import Embedder, load_embedder
from model.speaker_cluster import TUNABLE
from service.formats import relabelled
from service.schemas import Turn
from service.speakers import make_labeller
from service.turns import SERVICE_LEAKAGE, LeakageRules, TurnAssembler


@dataclass
class RefSession:
    session_id: str
    audio: np.ndarray  # (num_samples,) float32
    sample_rate: int
    turns: list[dict[str, Any]]  # speaker, start, end, text
    family: str  # voice family of every speaker, or "mixed" / "real"
    score_words: bool = True  # False where the reference has no transcript
    overlap: float | None = None  # share of the speech with two voices (simulated sessions' meta), if known
    noise: str | None = None  # its by_noise group (simulated sessions' meta), if known

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


OVERLAP_BINS = ((0.0, 0.1), (0.1, 0.25), (0.25, 1.0))  # share of speech in overlap: the by_overlap groups


def overlap_bin(ratio: float) -> str:
    lo, hi = next((b for b in OVERLAP_BINS if ratio < b[1]), OVERLAP_BINS[-1])
    return f"overlap {100 * lo:.0f}-{100 * hi:.0f}%"


NOISE_SPLIT_DB = 15.0  # speech-to-noise ratio that divides the by_noise groups of noisy sessions (drawn in 5-30 dB)


def noise_group(meta: dict[str, Any]) -> str | None:
    """The ``by_noise`` group of a session from its simulator ``meta``: ``"no added noise"`` (a faint floor at
    30-70 dB may be there), or the added noise's speech-to-noise ratio below or from ``NOISE_SPLIT_DB``; None for
    sessions the simulator did not make (no ``voices`` in the meta: real recordings)."""
    if "voices" not in meta:
        return None
    if "noise" not in meta:
        return "no added noise"
    return f"noise SNR {'<' if meta['snr_db'] < NOISE_SPLIT_DB else '>='} {NOISE_SPLIT_DB:.0f} dB"


def load_set(spec: str, limit: int | None = None) -> list[RefSession]:
    """Sessions of ``DIR`` or ``DIR:SUBSET`` (``model.data.meeting.read_eval_set``), at most ``limit``."""
    return [
        RefSession(e.session.session_id, e.session.audio, e.session.sample_rate, [asdict(t) for t in e.session.turns],
                   e.family, e.score_words, e.session.meta.get("overlap_ratio"), noise_group(e.session.meta))
        for e in read_eval_set(spec, limit)
    ]  # fmt: skip


@dataclass
class Decoded:
    turns: list[Turn] = field(default_factory=list)  # final turns, labels revised at the end of the stream
    live_turns: list[Turn] = field(default_factory=list)  # the same with the labels as given live
    cpu_seconds: float = 0.0
    word_times: dict[str, list[float]] = field(default_factory=dict)  # turn_id -> stream time each word came out

    def saw(self, turn_id: str, text: str, now: float) -> None:
        """Note the words of a partial or final turn that were not out before ``now`` (seconds of audio sent)."""
        times = self.word_times.setdefault(turn_id, [])
        times += [now] * max(0, len(text.split()) - len(times))


@dataclass
class Recording:
    """What the recognizer gave one session, decode step by decode step, so that the labelling can be run again
    (other clustering knobs) without decoding again: replaying it is exactly the live run."""

    steps: list[tuple[int, list[TokenEvent]]] = field(default_factory=list)  # (samples sent, events of the step)
    cpu_seconds: float = 0.0  # its share of the decoding CPU time


def recognize_sessions(rec: Recognizer, sessions: list[RefSession], batch: int = 16) -> list[Recording]:
    """Stream every session in 320 ms pieces, ``batch`` sessions decoded together, as the service does."""
    out = [Recording() for _ in sessions]
    for b0 in range(0, len(sessions), batch):
        group = list(range(b0, min(b0 + batch, len(sessions))))
        streams = {i: rec.create_stream() for i in group}
        pos = dict.fromkeys(group, 0)
        t0 = time.process_time()
        while not all(s.is_done for s in streams.values()):
            for i, s in streams.items():
                sess = sessions[i]
                if pos[i] < len(sess.audio):
                    piece = int(rec.chunk_seconds * sess.sample_rate)
                    s.accept_waveform(sess.sample_rate, sess.audio[pos[i] : pos[i] + piece])
                    pos[i] = min(pos[i] + piece, len(sess.audio))
                elif not s.finished:
                    s.input_finished()
            rec.decode_streams(list(streams.values()))
            for i, s in streams.items():
                out[i].steps.append((pos[i], s.pop_events()))
        cpu = time.process_time() - t0
        total = sum(sessions[i].duration for i in group)
        for i in group:
            out[i].cpu_seconds = cpu * sessions[i].duration / total
    return out


def label_sessions(
    recordings: list[Recording],
    sessions: list[RefSession],
    embedder: Embedder | None = None,
    clustering: dict[str, float] | None = None,
    count_hint: bool = False,
    spell: Callable[[str], str] | None = None,
    leakage: LeakageRules = SERVICE_LEAKAGE,
) -> list[Decoded]:
    """Assemble the recorded events into turns, speakers labelled by voice with ``embedder`` (as the service does;
    ``clustering`` overrides its tuned knobs), else by channel; the audio reaches the labeller as it did live.
    ``count_hint``: the labeller gets each session's reference speaker count as the client's ``max_speakers``.
    ``spell``: the recognizer's word repair (:meth:`Recognizer.spell`), as the service applies it.
    ``leakage``: the assembler's removal of cross-channel copies and echoes (:class:`TurnAssembler`; the service's
    rules unless given)."""
    results = []
    for recording, sess in zip(recordings, sessions, strict=True):
        t0 = time.process_time()
        result = Decoded()
        hint = (len({t["speaker"] for t in sess.turns}) or None) if count_hint else None
        labeller = make_labeller(embedder, max_speakers=hint, clustering=clustering)
        assembler = TurnAssembler(labeller, spell=spell, leakage=leakage)
        sent = 0
        for pos, events in recording.steps:
            if pos > sent:
                labeller.accept_waveform(sess.sample_rate, sess.audio[sent:pos])
                sent = pos
            now = pos / sess.sample_rate
            finals = assembler.push(events)
            for t in finals:
                result.saw(t.turn_id, t.text, now)
            result.turns += finals
            # as the service: partials (provisional labels; a client sees their words first)
            for p in assembler.partials():
                result.saw(p.turn_id, p.text, now)
        finals = assembler.finalize()
        for t in finals:
            result.saw(t.turn_id, t.text, sess.duration)
        result.turns += finals
        # as REST and relabelling WebSocket clients: the end-of-stream revision of the labels
        result.live_turns = result.turns
        result.turns = relabelled(result.turns, labeller.relabels(final=True))
        result.cpu_seconds = recording.cpu_seconds + time.process_time() - t0
        results.append(result)
    return results


def decode_sessions(
    rec: Recognizer,
    sessions: list[RefSession],
    batch: int = 16,
    embedder: Embedder | None = None,
    count_hint: bool = False,
    leakage: LeakageRules = SERVICE_LEAKAGE,
) -> list[Decoded]:
    """Stream every session (:func:`recognize_sessions`) and assemble labelled turns (:func:`label_sessions`)."""
    recordings = recognize_sessions(rec, sessions, batch)
    return label_sessions(recordings, sessions, embedder, count_hint=count_hint, spell=rec.spell, leakage=leakage)


def seglst(session_id: str, turns: Iterable[dict[str, Any]], by: str = "speaker") -> list[dict[str, Any]]:
    """meeteval SegLST rows of one session's turns (dicts with ``start``, ``end`` in seconds, ``text`` and the key
    ``by`` that names the stream: "speaker", or "channel" for ORC-WER); a session without turns gets one empty
    row, as meeteval needs every session present on both sides."""
    out = [{"session_id": session_id, "speaker": str(t[by]), "start_time": t["start"], "end_time": t["end"],
            "words": t["text"]} for t in turns]  # fmt: skip
    return out or [{"session_id": session_id, "speaker": "none", "start_time": 0.0, "end_time": 0.0, "words": ""}]


def _seglst_ref(s: RefSession) -> list[dict[str, Any]]:
    return seglst(s.session_id, s.turns)


def _seglst_hyp(s: RefSession, turns: Iterable[Turn], by: str) -> list[dict[str, Any]]:
    rows = ({by: getattr(t, by), "start": t.start, "end": t.end, "text": t.text} for t in turns)
    return seglst(s.session_id, rows, by)


def oracle_labelled(s: RefSession, turns: list[Turn]) -> list[Turn]:
    """``turns`` each labelled with the reference speaker it overlaps most in time (the first reference turn's
    speaker when it overlaps none): the best labels these turns allow, one speaker per turn."""
    out = []
    for t in turns:
        talk: dict[str, float] = defaultdict(float)
        for r in s.turns:
            talk[r["speaker"]] += max(0.0, min(t.end, r["end"]) - max(t.start, r["start"]))
        best = max(talk.items(), key=lambda kv: kv[1], default=("none", 0.0))[0]
        out.append(t.model_copy(update={"speaker": best}))
    return out


def _session_cp_errors(s: RefSession, turns: list[Turn]) -> int:
    import meeteval

    rates = meeteval.wer.cpwer(meeteval.io.SegLST(_seglst_ref(s)), meeteval.io.SegLST(_seglst_hyp(s, turns, "speaker")))
    return sum(r.errors for r in rates.values())


def best_labelled(s: RefSession, turns: list[Turn], passes: int = 3) -> list[Turn]:
    """``turns`` with reference speaker labels that make the session's cpWER low: :func:`oracle_labelled`, then
    coordinate descent (each turn in turn takes whichever reference speaker lowers the session's cpWER errors,
    until a pass changes nothing). What a turn-level labeller could at best reach with these turns: time overlap
    alone misnames turns whose words came out late or on the wrong side of a speaker change."""
    turns = oracle_labelled(s, turns)
    speakers = sorted({r["speaker"] for r in s.turns})
    if len(speakers) < 2 or not turns:
        return turns
    errors = _session_cp_errors(s, turns)
    for _ in range(passes):
        changed = False
        for i in range(len(turns)):
            for sp in speakers:
                if sp == turns[i].speaker:
                    continue
                trial = [*turns[:i], turns[i].model_copy(update={"speaker": sp}), *turns[i + 1 :]]
                e = _session_cp_errors(s, trial)
                if e < errors:
                    errors, turns, changed = e, trial, True
        if not changed:
            break
    return turns


def _error_rate(kind: str, sessions: list[RefSession], decoded: list[Decoded]) -> dict[str, float]:
    """``kind``: "orc" (ORC-WER by channel), "cp" (cpWER, final labels), "cp_live" (cpWER, live labels) or
    "cp_oracle" (cpWER, :func:`best_labelled`: what the turns cost, whatever the labeller does)."""
    import meeteval

    ref: list[dict[str, Any]] = []
    hyp: list[dict[str, Any]] = []
    for s, d in zip(sessions, decoded, strict=True):
        if s.score_words:
            ref += _seglst_ref(s)
            turns = {"cp_live": d.live_turns, "cp_oracle": best_labelled(s, d.turns)}.get(kind, d.turns)
            hyp += _seglst_hyp(s, turns, "channel" if kind == "orc" else "speaker")
    if not ref:
        return {}
    fn = meeteval.wer.orcwer if kind == "orc" else meeteval.wer.cpwer
    rates = fn(meeteval.io.SegLST(ref), meeteval.io.SegLST(hyp))
    errors = sum(r.errors for r in rates.values())
    length = sum(r.length for r in rates.values())
    return {"errors": errors, "words": length, "rate": errors / max(1, length)}


def _word_ends(turn: dict[str, Any]) -> tuple[list[str], list[float]]:
    """Reference words of a turn and their approximate end times: the turn's span shared by character counts."""
    words = turn["text"].split()
    weights = np.cumsum([len(w) + 1 for w in words], dtype=np.float64)
    span = turn["end"] - turn["start"]
    return words, [turn["start"] + span * float(c) / float(weights[-1]) for c in weights] if words else []


def _word_latencies(ref: dict[str, Any], hyp: Turn, times: list[float]) -> list[float]:
    """Emission time minus reference end of every hypothesis word that the word alignment matches."""
    words, ends = _word_ends(ref)
    hyp_words = hyp.text.split()
    out = []
    for block in difflib.SequenceMatcher(None, words, hyp_words, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            j = block.b + k
            if j < len(times):
                out.append(times[j] - ends[block.a + k])
    return out


def _timing(sessions: list[RefSession], decoded: list[Decoded]) -> dict[str, float]:
    starts, ends, words = [], [], []
    for s, d in zip(sessions, decoded, strict=True):
        for r in s.turns:
            best = max(d.turns, key=lambda h: min(h.end, r["end"]) - max(h.start, r["start"]), default=None)
            if best is not None and min(best.end, r["end"]) > max(best.start, r["start"]):
                starts.append(best.start - r["start"])
                ends.append(best.end - r["end"])
                words += _word_latencies(r, best, d.word_times.get(best.turn_id, []))
    out: dict[str, float] = {"matched_turns": len(starts), "matched_words": len(words)}
    for name, v in (("sot_delay", starts), ("eot_delay", ends), ("word_latency", words)):
        if v:
            out[f"{name}_median"] = float(np.median(v))
            out[f"{name}_p90"] = float(np.percentile(v, 90))
    return out


def edit_distance(ref: str, hyp: str) -> int:
    """Levenshtein distance between two strings (substitutions, insertions, deletions of one character)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def _cer(sessions: list[RefSession], decoded: list[Decoded]) -> dict[str, float]:
    """Character error rate of single-speaker sessions: all turns joined, spaces counted as characters."""
    errors = chars = 0
    for s, d in zip(sessions, decoded, strict=True):
        if s.score_words and len({t["speaker"] for t in s.turns}) == 1:
            ref = " ".join(t["text"] for t in sorted(s.turns, key=lambda t: t["start"]))
            hyp = " ".join(t.text for t in sorted(d.turns, key=lambda t: t.start))
            errors, chars = errors + edit_distance(ref, hyp), chars + len(ref)
    return {"errors": errors, "chars": chars, "rate": errors / chars} if chars else {}


def _speakers(sessions: list[RefSession], decoded: list[Decoded]) -> dict[str, float]:
    """Speaker count accuracy (sessions whose number of hypothesis labels equals the reference's) and DER
    (frame-level, misses + false alarms + confusion, best one-to-one label mapping) of the final turns."""
    from model.speaker_eval import der

    right = errors = speech = 0.0
    for s, d in zip(sessions, decoded, strict=True):
        right += len({t.speaker for t in d.turns}) == len({t["speaker"] for t in s.turns})
        e, n = der(
            [(t["speaker"], t["start"], t["end"]) for t in s.turns], [(t.speaker, t.start, t.end) for t in d.turns]
        )
        errors, speech = errors + e, speech + n
    return {"count_accuracy": right / max(1, len(sessions)), "der": errors / speech if speech else float("nan")}


def score(sessions: list[RefSession], decoded: list[Decoded]) -> dict[str, Any]:
    audio = sum(s.duration for s in sessions)
    ref_turns = sum(len(s.turns) for s in sessions)
    hyp_turns = sum(len(d.turns) for d in decoded)
    return {
        "sessions": len(sessions),
        "hours": audio / 3600,
        "orc_wer": _error_rate("orc", sessions, decoded),
        "cp_wer": _error_rate("cp", sessions, decoded),
        "cp_wer_live": _error_rate("cp_live", sessions, decoded),
        "cp_wer_oracle_labels": _error_rate("cp_oracle", sessions, decoded),
        "cer": _cer(sessions, decoded),
        "turns": {"reference": ref_turns, "found": hyp_turns, "ratio": hyp_turns / max(1, ref_turns)},
        "speakers": _speakers(sessions, decoded),
        "timing": _timing(sessions, decoded),
        "rtf": sum(d.cpu_seconds for d in decoded) / max(audio, 1e-9),
    }


def evaluate(
    rec: Recognizer,
    specs: list[str],
    limit: int | None = None,
    batch: int = 16,
    voice_labels: bool = True,
    speaker_model: str | None = None,
    count_hint: bool = False,
    transcripts: list[dict[str, Any]] | None = None,
    gain: float = 1.0,
    codec: float | None = None,
    noise: float | None = None,
    band: int | None = None,
    leakage: LeakageRules = SERVICE_LEAKAGE,
) -> dict[str, Any]:
    """Decode and score every set of ``specs``; speakers labelled by voice with the speaker model in folder
    ``speaker_model`` (default: the bundled one), or by channel; ``count_hint``: see :func:`label_sessions`.
    ``transcripts``: if given, one :func:`transcript_row` per session is appended to it. ``noise``: white noise
    this many dB below each session's peak is added first (a recording's hiss; seeded by the session id);
    ``gain``: then the audio is scaled by it (clipped to [-1, 1]), to measure how the recording level matters;
    ``band``: then band-limited as if recorded at this sample rate (Hz; 8000: a telephone line);
    ``codec``: then stored and decoded as Ogg Vorbis at this compression level (0-1), to measure what a lossy
    recording costs;
    ``leakage``: see :func:`label_sessions`."""
    embedder = load_embedder(speaker_model) if voice_labels else None
    labels = f"voice ({speaker_model or 'bundled'})" if voice_labels else "channel"
    labels += ", reference speaker count as the max_speakers hint" if count_hint and voice_labels else ""
    report: dict[str, Any] = {"model": rec.model_name, "labels": labels,
                              "search": search_note(rec), "sets": {}}  # fmt: skip
    if gain != 1.0:
        report["gain"] = gain
    if codec is not None:
        report["codec"] = codec
    if noise is not None:
        report["noise"] = noise
    if band is not None:
        report["band"] = band
    report.update(leakage.changed())
    for spec in specs:
        sessions = load_set(spec, limit)
        for s in sessions:
            if noise is not None:
                s.audio = add_noise_floor(s.audio, noise, s.session_id)
            if gain != 1.0:
                s.audio = np.clip(s.audio * np.float32(gain), -1.0, 1.0)
            if band is not None:
                s.audio = band_limit(s.audio, band)
            if codec is not None:
                s.audio = vorbis_roundtrip(s.audio, codec)
        decoded = decode_sessions(rec, sessions, batch, embedder, count_hint, leakage)
        entry = score(sessions, decoded)
        if transcripts is not None:
            transcripts += [transcript_row(spec, s, d) for s, d in zip(sessions, decoded, strict=True)]
        by_family: dict[str, list[int]] = defaultdict(list)
        by_overlap: dict[str, list[int]] = defaultdict(list)
        by_noise: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(sessions):
            by_family[s.family].append(i)
            if s.overlap is not None and len({t["speaker"] for t in s.turns}) > 1:
                by_overlap[overlap_bin(s.overlap)].append(i)
            if s.noise is not None:
                by_noise[s.noise].append(i)
        for key, groups in (("by_family", by_family), ("by_overlap", by_overlap), ("by_noise", by_noise)):
            if len(groups) > 1:
                entry[key] = {g: score([sessions[i] for i in idx], [decoded[i] for i in idx])
                              for g, idx in sorted(groups.items())}  # fmt: skip
        report["sets"][spec] = entry
        print(f"{spec}: {summary_line(entry)}", file=sys.stderr)
    return report


def transcript_row(spec: str, s: RefSession, d: Decoded) -> dict[str, Any]:
    """One session's reference and hypothesis turns side by side (``sts-eval --out``'s ``OUT.transcripts.jsonl``,
    for reading the errors): speaker, start, end (seconds), text; the hypothesis turns also their channel and
    their label as first given live."""
    live = {t.turn_id: t.speaker for t in d.live_turns}
    hyp = [{"speaker": t.speaker, "live_speaker": live.get(t.turn_id, t.speaker), "channel": t.channel,
            "start": t.start, "end": t.end, "text": t.text} for t in d.turns]  # fmt: skip
    ref = [{k: t[k] for k in ("speaker", "start", "end", "text")} for t in s.turns]
    return {"set": spec, "session_id": s.session_id, "family": s.family, "score_words": s.score_words,
            "reference": ref, "hypothesis": hyp}  # fmt: skip


def search_note(rec: Recognizer) -> str:
    """The recognizer's non-default search settings in words, and whether a lexicon repairs its words."""
    lexicon = f", lexicon repair ({len(rec.lexicon):,} words)" if rec.lexicon is not None else ""
    return rec.config.streaming.search_note() + lexicon


def summary_line(e: dict[str, Any]) -> str:
    t = e["timing"]

    def pct(metric: str) -> str:
        return f"{100 * e.get(metric, {}).get('rate', float('nan')):.1f}%"

    def sec(name: str) -> str:
        return f"{t.get(name, float('nan')):.2f}s"

    return (
        f"{e['sessions']} sessions, ORC-WER {pct('orc_wer')}, cpWER {pct('cp_wer')}, CER {pct('cer')}, turns "
        f"{e['turns']['found']}/{e['turns']['reference']}, speaker count acc. "
        f"{100 * e['speakers']['count_accuracy']:.1f}%, DER {100 * e['speakers']['der']:.1f}%, sot delay median "
        f"{sec('sot_delay_median')}, eot delay median {sec('eot_delay_median')}, word latency median "
        f"{sec('word_latency_median')}, RTF {e['rtf']:.3f}"
    )


def markdown(report: dict[str, Any]) -> str:
    rows = ["| set | sessions | hours | WER / ORC-WER | cpWER (live / oracle labels) | CER (single) "
            "| turns found / ref | spk count acc. | DER | sot delay med / p90 (s) | eot delay med / p90 (s) "
            "| word latency med / p90 (s) | RTF |", "|---" * 13 + "|"]  # fmt: skip

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    def row(name: str, e: dict[str, Any]) -> str:
        t = e["timing"]
        orc, cp, cer = e["orc_wer"].get("rate"), e["cp_wer"].get("rate"), e.get("cer", {}).get("rate")
        live, oracle = e.get("cp_wer_live", {}).get("rate"), e.get("cp_wer_oracle_labels", {}).get("rate")
        return (f"| {name} | {e['sessions']} | {e['hours']:.2f} | {pct(orc)} | {pct(cp)} ({pct(live)} / {pct(oracle)}) "
                f"| {pct(cer)} | "
                f"{e['turns']['found']} / {e['turns']['reference']} | "
                f"{100 * e['speakers']['count_accuracy']:.1f}% | {100 * e['speakers']['der']:.1f}% | "
                f"{t.get('sot_delay_median', float('nan')):.2f} / {t.get('sot_delay_p90', float('nan')):.2f} | "
                f"{t.get('eot_delay_median', float('nan')):.2f} / {t.get('eot_delay_p90', float('nan')):.2f} | "
                f"{t.get('word_latency_median', float('nan')):.2f} / {t.get('word_latency_p90', float('nan')):.2f} | "
                f"{e['rtf']:.3f} |")  # fmt: skip

    rows += group_rows(report["sets"], row)
    head = f"Model `{report['model']}`, speaker labels by {report['labels']}{report.get('search', '')}"
    head += f", white noise {report['noise']:g} dB below the peak added" if "noise" in report else ""
    head += f", audio scaled by {report['gain']:g}" if "gain" in report else ""
    head += f", band-limited as if sampled at {report['band']} Hz" if "band" in report else ""
    head += f", stored as Ogg Vorbis at level {report['codec']:g}" if "codec" in report else ""
    if "copy_window" in report:
        window = report["copy_window"]
        head += f", cross-channel copies dropped within {window:g} s" if window else ", cross-channel copies kept"
    if "echo_cover" in report:
        cover = report["echo_cover"]
        head += f", echoes dropped at {cover:g} of their letters" if cover else ", echoes kept"
    if "echo_grace" in report:
        head += f", echoes judged until {report['echo_grace']:g} s after their container closed"
    return head + "\n\n" + "\n".join(rows) + "\n"


def sweep_score(report: dict[str, Any]) -> float:
    """What a search-bias sweep minimises: the mean over sets of (ORC-WER + cpWER) / 2, i.e. both the words and
    who said them."""
    rates = [(e["orc_wer"]["rate"] + e["cp_wer"]["rate"]) / 2 for e in report["sets"].values() if e["orc_wer"]]
    return sum(rates) / max(1, len(rates))


def _grid_search(
    grid: dict[str, list[float]],
    run: Callable[[dict[str, float]], dict[str, Any]],
    cell: Callable[[dict[str, Any]], str],
    objective: Callable[[dict[str, Any]], float],
    title: str,
) -> tuple[dict[str, Any], str]:
    """Run every combination of ``grid`` (name -> values) and keep the one with the lowest ``objective`` of its
    report; returns {best, reports} and a Markdown table (one ``cell`` per set, then the objective)."""
    names = list(grid)
    rows, reports, specs = [], {}, []
    best: tuple[float, dict[str, float]] = (float("inf"), {})
    for values in itertools.product(*(grid[n] for n in names)):
        setting = dict(zip(names, values, strict=True))
        report = run(setting)
        reports[",".join(f"{n}={v:g}" for n, v in setting.items())] = report
        specs = list(report["sets"])
        value = objective(report)
        cells = [cell(e) for e in report["sets"].values()]
        rows.append("| " + " | ".join(f"{v:g}" for v in values) + " | " + " | ".join(cells) + f" | {100 * value:.1f} |")
        if value < best[0]:
            best = (value, setting)
    best_text = ", ".join(f"{n.replace('_', ' ')} {v:g}" for n, v in best[1].items())
    head = [f"{title}; best: {best_text}", "",
            "| " + " | ".join(n.replace("_", " ") for n in names) + " | " + " | ".join(specs) + " | score |",
            "|---" * (len(names) + len(specs) + 1) + "|"]  # fmt: skip
    return {"best": best[1], "reports": reports}, "\n".join(head + rows) + "\n"


def sweep_search(
    rec: Recognizer, specs: list[str], grid: dict[str, list[float]], limit: int | None = None, batch: int = 16
) -> tuple[dict[str, Any], str]:
    """Evaluate ``specs`` at every combination of the search settings in ``grid`` (name -> values, names from
    :data:`SEARCH_SETTINGS`); returns the reports with the best combination (the lowest :func:`sweep_score`) and a
    Markdown table (per set: ORC-WER / cpWER / turns found per reference turn)."""
    result, table = _grid_search(
        grid,
        lambda setting: evaluate(rec.with_search(rec.config.streaming.overridden(**setting)), specs, limit, batch),
        lambda e: f"{100 * e['orc_wer']['rate']:.1f} / {100 * e['cp_wer']['rate']:.1f} / {e['turns']['ratio']:.2f}",
        sweep_score,
        f"Model `{rec.model_name}`, search sweep",
    )
    return {"model": rec.model_name, **result}, table


def label_score(report: dict[str, Any]) -> float:
    """What a labelling sweep minimises: the mean cpWER of the sets (the words are the recognizer's and do not
    change; who said them does, single-speaker sessions included: a split speaker costs there too)."""
    rates = [e["cp_wer"]["rate"] for e in report["sets"].values() if e["cp_wer"]]
    return sum(rates) / max(1, len(rates))


def sweep_labels(
    rec: Recognizer,
    specs: list[str],
    grid: dict[str, list[float]],
    limit: int | None = None,
    batch: int = 16,
    speaker_model: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Decode ``specs`` once, then label them at every combination of the clustering knobs in ``grid`` (names
    from ``model.speaker_cluster.TUNABLE``, replacing the embedder's tuned values); the best has the lowest
    :func:`label_score`. Cells: cpWER / cpWER - ORC-WER / speaker count accuracy."""
    embedder = load_embedder(speaker_model)
    decoded = {}
    for spec in specs:
        sessions = load_set(spec, limit)
        decoded[spec] = (sessions, recognize_sessions(rec, sessions, batch))

    def run(setting: dict[str, float]) -> dict[str, Any]:
        sets = {spec: score(sessions, label_sessions(recordings, sessions, embedder, setting, spell=rec.spell))
                for spec, (sessions, recordings) in decoded.items()}  # fmt: skip
        return {"model": rec.model_name, "labels": f"voice ({speaker_model or 'bundled'})", "sets": sets}

    def cell(e: dict[str, Any]) -> str:
        cp, orc = 100 * e["cp_wer"]["rate"], 100 * e["orc_wer"]["rate"]
        return f"{cp:.1f} / {cp - orc:.1f} / {100 * e['speakers']['count_accuracy']:.0f}%"

    tuned = embedder.info.clustering or {}
    title = f"Model `{rec.model_name}`, labelling sweep (embedder's tuned knobs: {tuned})"
    result, table = _grid_search(grid, run, cell, label_score, title)
    return {"model": rec.model_name, **result}, table


def parse_sweep(items: list[str], known: tuple[str, ...] = SEARCH_SETTINGS) -> dict[str, list[float]]:
    """``["turn_bonus=0,0.5", "lm_weight=0.2,0.4"]`` -> {name: values}; names must be in ``known``."""
    grid = {}
    for item in items:
        name, _, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if name not in known or not values:
            raise SystemExit(f"a sweep wants NAME=V1,V2,... with NAME one of {', '.join(known)}: {item!r}")
        grid[name] = [float(v) for v in values.split(",")]
    return grid


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+", help="session-set folders, DIR or DIR:SUBSET")
    p.add_argument("--model", default=None, help="checkpoint folder (default: the bundled model)")
    p.add_argument("--out", default=None,
                   help="write OUT.json and OUT.md (and, without a sweep, each session's reference and hypothesis "
                   "turns to OUT.transcripts.jsonl)")  # fmt: skip
    p.add_argument("--limit", type=int, default=None, help="at most this many sessions per set")
    p.add_argument("--batch", type=int, default=16, help="sessions decoded together")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--noise", type=float, default=None, metavar="DB",
                   help="first add white noise DB dB below each recording's peak (e.g. 45: a faint hiss)")  # fmt: skip
    p.add_argument("--gain", type=float, default=1.0,
                   help="then scale the audio by this factor (e.g. 0.03: a recording 30 dB quieter)")  # fmt: skip
    p.add_argument("--band", type=int, default=None, metavar="HZ",
                   help="then band-limit the audio as if sampled at this rate (8000: a telephone line)")  # fmt: skip
    p.add_argument("--codec", type=float, default=None, metavar="LEVEL",
                   help="then store and decode the audio as Ogg Vorbis at this compression level, 0-1 (1: about "
                   "35 kbps), to measure what a lossy recording costs")  # fmt: skip
    p.add_argument("--copy-window", type=float, default=LeakageRules.copy_window, metavar="SECONDS",
                   help="drop cross-channel copies of words within this many seconds (the turn assembler's "
                   f"copy_window, as the service does: {LeakageRules.copy_window:g}; 0: keep them)")  # fmt: skip
    p.add_argument("--echo-cover", type=float, default=LeakageRules.echo_cover, metavar="SHARE",
                   help="drop a turn inside an open turn on the other channel when this share of its letters echoes "
                   f"that turn's words (the turn assembler's echo_cover, as the service does: "
                   f"{LeakageRules.echo_cover:g}; 0: keep them)")  # fmt: skip
    p.add_argument("--echo-grace", type=float, default=LeakageRules.echo_grace, metavar="SECONDS",
                   help="a turn still counts as inside its container this long after the container closed (the turn "
                   f"assembler's echo_grace, as the service does: {LeakageRules.echo_grace:g})")  # fmt: skip
    p.add_argument("--channel-labels", action="store_true", help="label speakers by channel, not by voice")
    p.add_argument("--speaker-model", default=None, help="speaker-embedder folder (default: the bundled one)")
    p.add_argument(
        "--count-hint",
        action="store_true",
        help="give the labeller each session's reference speaker count as the client's max_speakers hint",
    )
    add_search_options(p, "override the checkpoint's search setting")
    p.add_argument("--lm", default=None, help="folder of the character LM to fuse (default: the model's own)")
    p.add_argument("--lexicon", default=None,
                   help="folder of the word lexicon that repairs misspelled words (default: the model's own; 'none': "
                   "no repair)")  # fmt: skip
    p.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="evaluate at each value (repeat for a grid) and report the best (cells: ORC-WER / cpWER / "
                   "turns per reference turn; score: mean of (ORC-WER + cpWER) / 2); tune on sets you do not "
                   "report")  # fmt: skip
    p.add_argument("--sweep-labels", action="append", default=[], metavar="NAME=V1,V2,...",
                   help=f"decode once, then label at each value of a clustering knob ({', '.join(TUNABLE)}; repeat "
                   "for a grid) and report the best (cells: cpWER / cpWER - ORC-WER / speaker count accuracy; score: "
                   "mean cpWER of the sets)")  # fmt: skip
    a = p.parse_args(argv)
    if not a.gain > 0:
        p.error(f"--gain must be positive, got {a.gain}")
    try:
        leakage = LeakageRules(a.copy_window, a.echo_cover, a.echo_grace)
    except ValueError as e:
        p.error(f"{e} (--{str(e).split()[0].replace('_', '-')})")
    if a.codec is not None and not 0 <= a.codec <= 1:
        p.error(f"--codec must be a compression level in [0, 1], got {a.codec}")
    if a.band is not None and not 1000 <= a.band <= 16000:
        p.error(f"--band must be a sample rate in 1000-16000 Hz, got {a.band}")
    probes = a.gain != 1.0 or a.codec is not None or a.noise is not None or a.band is not None
    if (probes or leakage.changed()) and (a.sweep or a.sweep_labels):
        p.error("--noise, --gain, --band, --codec, --copy-window, --echo-cover and --echo-grace apply to an "
                "evaluation, not to a sweep")  # fmt: skip
    set_num_threads(a.threads)
    model = load_model(a.model)
    lm = CharNgram.load(a.lm) if a.lm else CharNgram.load_if_present(checkpoint_dir(a.model))
    if a.lexicon == "none":
        lexicon = None
    else:
        lexicon = Lexicon.load(a.lexicon) if a.lexicon else Lexicon.load_if_present(checkpoint_dir(a.model))
    try:
        rec = Recognizer(model, model.cfg.streaming.overridden(**search_overrides(a)), lm, lexicon)
    except ValueError as e:
        raise SystemExit(f"{e} (give --lm DIR)") from None
    if a.sweep:
        publish(*sweep_search(rec, a.sets, parse_sweep(a.sweep), a.limit, a.batch), a.out)
        return
    if a.sweep_labels:
        grid = parse_sweep(a.sweep_labels, TUNABLE)
        publish(*sweep_labels(rec, a.sets, grid, a.limit, a.batch, a.speaker_model), a.out)
        return
    transcripts: list[dict[str, Any]] = []
    report = evaluate(rec, a.sets, a.limit, a.batch, voice_labels=not a.channel_labels, speaker_model=a.speaker_model,
                      count_hint=a.count_hint, transcripts=transcripts, gain=a.gain, codec=a.codec,
                      noise=a.noise, band=a.band, leakage=leakage)  # fmt: skip
    md = markdown(report)
    publish(report, md, a.out)
    if a.out:
        Path(a.out + ".transcripts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in transcripts))


if __name__ == "__main__":
    main()
