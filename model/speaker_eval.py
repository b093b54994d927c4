"""How well speaker labelling works, with ORACLE turns (the reference turns' times), per set and voice family.

    python -m model.speaker_eval data/dev/single data/dev/meet2 data/dev/meet3-4 data/real --out exp/speaker

For every session the reference turns are labelled online with the service's clustering call
(``service.speakers.VoiceLabeller``): in order of their end (a turn is final when it ends), each joins a known
speaker or opens a new one; finished turns that overlap it are ``overlapping`` (never its label), and a turn
still open when it ends is its ``rival`` (embedded from its start to now; the two are labelled jointly). Each is
embedded from its exclusive part (where no other turn talks: the oracle knows every turn, the service only the
finished ones).

Reported:
- speaker count accuracy: sessions whose number of labels equals the number of reference speakers;
- DER: frame-level (10 ms) diarization error, best one-to-one mapping of labels to reference speakers
  (with oracle turns there is no miss or false alarm, so this is the speaker confusion);
- cpWER with the REFERENCE words and our labels (meeteval), next to ORC-WER of the same turns by HEAT channel
  (0 with oracle words): the gap is what labelling alone loses;
- pair EER of the embeddings: same vs different speaker over the turn pairs of each session (the decision
  the clusterer makes) and over all pairs of the bank's dev utterances per family (``--bank``).

``--tune`` first sweeps the clustering threshold on freshly simulated DEV-voice meetings (not the stored dev
sets) and uses the best.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from model.data.meeting import EvalSession, Session, family_of, read_eval_set
from model.heat import assign_channels_heat
from model.report import group_rows, publish
from model.speaker import PRETRAINED_DIR, Embedder, cut, exclusive_span, load_embedder, save_clustering
from model.speaker_cluster import TUNABLE, ClustererConfig, OnlineSpeakerClusterer, clusterer_config

FRAME = 0.01  # seconds per DER frame


@dataclass
class Labelled:
    session: Session
    family: str  # voice family of every speaker, "mixed" or "real"
    labels: list[str]  # ours, one per reference turn, after revision at the end of the session
    embeddings: np.ndarray  # (num_turns, E)
    score_words: bool = True
    live_labels: list[str] | None = None  # ours as given live (online), before the revision


@dataclass
class SessionEmbeddings:
    """What labelling a session needs of its audio; independent of the clustering policy, so tuning embeds once."""

    turns: np.ndarray  # (num_turns, E) embedding of every turn's exclusive part
    seconds: list[float]  # seconds each was cut from
    rivals: list[tuple[np.ndarray | None, float]]  # per turn: the turn still open when it ends (audio so far)


def labelling_order(session: Session) -> list[int]:
    """Turn indices in the order they become final: by end."""
    return sorted(range(len(session.turns)), key=lambda k: (session.turns[k].end, session.turns[k].start))


def embed_session(session: Session, embedder: Embedder) -> SessionEmbeddings:
    turns = session.turns
    embs, secs = [], []
    for i, t in enumerate(turns):
        others = [(o.start, o.end) for j, o in enumerate(turns) if j != i]
        parts = exclusive_span(t.start, t.end, others)
        embs.append(embedder.embed(cut(session.audio, parts)))
        secs.append(sum(b - a for a, b in parts))
    rivals: list[tuple[np.ndarray | None, float]] = [(None, 0.0)] * len(turns)
    done: set[int] = set()
    for i in labelling_order(session):
        t = turns[i]
        open_ = [j for j, o in enumerate(turns) if j not in done and j != i and o.start < t.end]
        if open_:  # still talking when this turn ends: its audio so far, as the service cuts it
            start = min(turns[j].start for j in open_)
            rivals[i] = (embedder.embed(cut(session.audio, [(start, t.end)])), t.end - start)
        done.add(i)
    return SessionEmbeddings(np.asarray(embs), secs, rivals)


def label_online(session: Session, config: ClustererConfig, emb: SessionEmbeddings) -> tuple[list[str], list[str]]:
    """Our labels of every reference turn (see the module docstring): as given live, and as revised at the end."""
    turns = session.turns
    clusterer = OnlineSpeakerClusterer(config)
    labels: list[str | None] = [None] * len(turns)  # as given at each turn's close
    now: list[str | None] = [None] * len(turns)  # as they stand (revisions during the stream kept)
    order = labelling_order(session)
    done: list[int] = []  # in the clusterer's order
    for i in order:
        t = turns[i]
        overlapping = {now[j] for j, o in enumerate(turns) if now[j] and o.start < t.end and o.end > t.start}
        rival, rival_seconds = emb.rivals[i]
        clusterer.assign(emb.turns[i], t.start, t.end, {x for x in overlapping if x}, rival, rival_seconds)
        done.append(i)
        if config.live_revise:  # as service.speakers.VoiceLabeller: turns overlapping an open one stay put
            closed = set(done)
            since = min((o.start for j, o in enumerate(turns) if j not in closed and o.start < t.end), default=None)
            clusterer.adopt(clusterer.revise(live=True, pinned=clusterer.ending_after(since)))
        for j, r in zip(done, clusterer.turns, strict=True):
            now[j] = r.label
        labels[i] = now[i]
    revised: list[str] = [""] * len(turns)
    for i, lab in zip(order, clusterer.revise(), strict=True):
        revised[i] = lab
    return [x or "" for x in labels], revised


# ----------------------------------------------------------------------------------------------- measures


def der(ref: Sequence[tuple[str, float, float]], hyp: Sequence[tuple[str, float, float]]) -> tuple[float, float]:
    """(error seconds, reference speech seconds) of frame-level DER with the best 1:1 label mapping.

    ``ref``/``hyp``: (speaker, start, end) segments in seconds.
    """
    from scipy.optimize import linear_sum_assignment

    end = max([e for _, _, e in list(ref) + list(hyp)], default=0.0)
    n = int(np.ceil(end / FRAME)) + 1

    def activity(segs: Sequence[tuple[str, float, float]]) -> tuple[list[str], np.ndarray]:
        names = sorted({s for s, _, _ in segs})
        act = np.zeros((len(names), n), dtype=bool)
        for s, a, b in segs:
            act[names.index(s), int(round(a / FRAME)) : int(round(b / FRAME))] = True
        return names, act

    _, r = activity(ref)
    _, h = activity(hyp)
    overlap = r.astype(np.int64) @ h.T.astype(np.int64)  # (R, H) frames both active
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else ([], [])
    correct = float(overlap[rows, cols].sum()) if len(rows) else 0.0
    nr, nh = r.sum(0), h.sum(0)
    errors = float(np.maximum(nr, nh).sum()) - correct
    return errors * FRAME, float(nr.sum()) * FRAME


def word_error_rates(items: Sequence[Labelled]) -> dict[str, dict[str, float]]:
    """meeteval cpWER (our labels; ``cp_wer_live``: the labels as given live, where known) and ORC-WER (HEAT
    channels) with the reference words."""
    import meeteval

    ref, cp, live, orc = [], [], [], []
    for it in items:
        if not it.score_words:
            continue
        s = it.session
        channels = assign_channels_heat(s.turns)
        live_labels = it.live_labels or it.labels
        for t, lab, lab_live, ch in zip(s.turns, it.labels, live_labels, channels, strict=True):
            seg = {"session_id": s.session_id, "start_time": t.start, "end_time": t.end, "words": t.text}
            ref.append({**seg, "speaker": t.speaker})
            cp.append({**seg, "speaker": lab})
            live.append({**seg, "speaker": lab_live})
            orc.append({**seg, "speaker": str(ch)})
    out: dict[str, dict[str, float]] = {}
    if not ref:
        return out
    scores = [("cp_wer", cp, meeteval.wer.cpwer), ("orc_wer", orc, meeteval.wer.orcwer)]
    if any(it.live_labels is not None for it in items):
        scores.append(("cp_wer_live", live, meeteval.wer.cpwer))
    for name, hyp, fn in scores:
        rates = fn(meeteval.io.SegLST(ref), meeteval.io.SegLST(hyp))
        errors = sum(r.errors for r in rates.values())
        length = sum(r.length for r in rates.values())
        out[name] = {"errors": errors, "words": length, "rate": errors / max(1, length)}
    return out


def eer(same: Sequence[float], diff: Sequence[float]) -> float:
    """Equal error rate of scores where higher means "same speaker" (nan without both kinds)."""
    if not len(same) or not len(diff):
        return float("nan")
    s, d = np.sort(np.asarray(same)), np.sort(np.asarray(diff))
    best = 1.0
    for th in np.concatenate([s, d]):
        miss = np.searchsorted(s, th, side="left") / len(s)
        fa = 1.0 - np.searchsorted(d, th, side="left") / len(d)
        best = min(best, max(miss, fa))
    return float(best)


def session_pairs(items: Sequence[Labelled]) -> tuple[list[float], list[float]]:
    """Cosines of same-speaker and different-speaker turn pairs inside each session."""
    same: list[float] = []
    diff: list[float] = []
    for it in items:
        spk = [t.speaker for t in it.session.turns]
        sims = it.embeddings @ it.embeddings.T
        for i in range(len(spk)):
            for j in range(i + 1, len(spk)):
                (same if spk[i] == spk[j] else diff).append(float(sims[i, j]))
    return same, diff


def summarise(items: Sequence[Labelled]) -> dict[str, Any]:
    count_ok = sum(len(set(it.labels)) == len(it.session.speakers) for it in items)
    err = tot = 0.0
    for it in items:
        e, t = der([(t.speaker, t.start, t.end) for t in it.session.turns],
                   [(lab, t.start, t.end) for t, lab in zip(it.session.turns, it.labels, strict=True)])  # fmt: skip
        err, tot = err + e, tot + t
    same, diff = session_pairs(items)
    out: dict[str, Any] = {
        "sessions": len(items),
        "speaker_count_accuracy": count_ok / max(1, len(items)),
        "labels_per_session": float(np.mean([len(set(it.labels)) for it in items])) if items else 0.0,
        "ref_speakers_per_session": float(np.mean([len(it.session.speakers) for it in items])) if items else 0.0,
        "der": err / max(tot, 1e-9),
        "pair_eer": eer(same, diff),
    }
    out.update(word_error_rates(items))
    return out


# ----------------------------------------------------------------------------------------------- running


def simulated_dev(bank_root: str, sessions: int, seed: int) -> list[EvalSession]:
    """Fresh meetings of 2-4 DEV voices (all dev families of the bank), for tuning."""
    from model.data.bank import Bank
    from model.data.simulator import MeetingSimulator, SimulatorConfig

    config = SimulatorConfig(split="dev", min_speakers=2, max_speakers=4, distinct_people=True, max_duration=45.0)
    sim = MeetingSimulator(config, Bank(bank_root))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(sessions):
        s = sim.sample(rng, session_id=f"tune-{i:04d}")
        out.append(EvalSession(s, family_of(s), True))
    return out


def tune(
    embedder: Embedder,
    sessions: Sequence[EvalSession],
    base: ClustererConfig,
    grid: Sequence[float],
    merge_grid: Sequence[float],
) -> tuple[ClustererConfig, list[dict[str, float]]]:
    """The clustering threshold (``grid``) and revision merge threshold (``merge_grid``) with the lowest cpWER
    of the revised labels on ``sessions`` (ties: lower DER)."""
    cache = {e.session.session_id: embed_session(e.session, embedder) for e in sessions}
    rows = []
    for th in grid:
        for merge in merge_grid:
            cfg = replace(base, threshold=float(th), merge_threshold=float(merge))
            items = []
            for e in sessions:
                emb = cache[e.session.session_id]
                live, revised = label_online(e.session, cfg, emb)
                items.append(Labelled(e.session, e.family, revised, emb.turns, e.score_words, live))
            m = summarise(items)
            rows.append({"threshold": float(th), "merge_threshold": float(merge), "cp_wer": m["cp_wer"]["rate"],
                         "der": m["der"], "speaker_count_accuracy": m["speaker_count_accuracy"]})  # fmt: skip
    best = min(rows, key=lambda r: (round(r["cp_wer"], 4), r["der"]))
    return replace(base, threshold=best["threshold"], merge_threshold=best["merge_threshold"]), rows


def bank_pair_eer(bank_root: str, embedder: Embedder, per_voice: int = 8) -> dict[str, dict[str, float]]:
    """Pair EER over the bank's dev utterances (up to ``per_voice`` per voice), per family and over all."""
    from model.data.bank import Bank

    bank = Bank(bank_root)
    embs: list[np.ndarray] = []
    voices: list[str] = []
    fams: list[str] = []
    for v in bank.voices("dev"):
        for u in bank.utterances_of(v)[:per_voice]:
            embs.append(embedder.embed(u.load()))
            voices.append(v)
            fams.append(u.family)
    e = np.asarray(embs)
    sims = e @ e.T
    out: dict[str, dict[str, float]] = {}
    for fam in sorted(set(fams)) + ["all"]:
        idx = [i for i, f in enumerate(fams) if fam in ("all", f)]
        same = [sims[i, j] for a, i in enumerate(idx) for j in idx[a + 1 :] if voices[i] == voices[j]]
        diff = [sims[i, j] for a, i in enumerate(idx) for j in idx[a + 1 :] if voices[i] != voices[j]]
        out[fam] = {"voices": len({voices[i] for i in idx}), "utterances": len(idx), "pair_eer": eer(same, diff)}
    return out


def markdown(report: dict[str, Any]) -> str:
    rows = ["| set | sessions | count acc. | labels / ref spk | DER | ORC-WER | cpWER | gap | gap live | pair EER |",
            "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip

    def pct(x: Any) -> str:
        return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}%"

    def row(name: str, m: dict[str, Any]) -> str:
        orc, cp = m.get("orc_wer", {}).get("rate"), m.get("cp_wer", {}).get("rate")
        live = m.get("cp_wer_live", {}).get("rate")
        gap = None if orc is None or cp is None else cp - orc
        gap_live = None if orc is None or live is None else live - orc
        return (f"| {name} | {m['sessions']} | {pct(m['speaker_count_accuracy'])} | {m['labels_per_session']:.2f} / "
                f"{m['ref_speakers_per_session']:.2f} | {pct(m['der'])} | {pct(orc)} | {pct(cp)} | {pct(gap)} | "
                f"{pct(gap_live)} | {pct(m['pair_eer'])} |")  # fmt: skip

    rows += group_rows(report["sets"], row)
    text = "\n".join(rows) + "\n"
    if "bank_pair_eer" in report:
        text += "\n| bank dev family | voices | utterances | pair EER |\n|---|---|---|---|\n"
        for fam, m in report["bank_pair_eer"].items():
            text += f"| {fam} | {m['voices']} | {m['utterances']} | {pct(m['pair_eer'])} |\n"
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+", help="session-set folders, DIR or DIR:SUBSET")
    p.add_argument("--speaker-model", default=None, help="projection folder (default: the bundled one)")
    p.add_argument("--threshold", type=float, default=None, help="clustering threshold (default: the tuned one)")
    p.add_argument("--min-new-seconds", type=float, default=None)
    p.add_argument("--max-speakers-hint", action="store_true", help="give each session its true speaker count")
    p.add_argument("--merge-threshold", type=float, default=None, help="revision merge threshold")
    p.add_argument("--tune", type=int, default=0, help="tune the thresholds on this many simulated dev meetings")
    p.add_argument("--save-tuned", action="store_true", help="store the tuned thresholds with the speaker model")
    p.add_argument("--tune-grid", default="0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.55,0.6", help="thresholds tried by --tune")
    p.add_argument("--tune-merge-grid", default="0.2,0.3,0.4,0.5,1.1", help="merge thresholds tried by --tune")
    p.add_argument("--bank", default=None, help="also report pair EER over this bank's dev utterances")
    p.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    a = p.parse_args(argv)
    if a.save_tuned and not a.tune:
        p.error("--save-tuned stores what --tune finds: give --tune N")
    embedder = load_embedder(a.speaker_model)
    cfg = clusterer_config(embedder.info.clustering)
    if a.threshold is not None:
        cfg = replace(cfg, threshold=a.threshold)
    if a.min_new_seconds is not None:
        cfg = replace(cfg, min_new_seconds=a.min_new_seconds)
    if a.merge_threshold is not None:
        cfg = replace(cfg, merge_threshold=a.merge_threshold)
    report: dict[str, Any] = {"speaker_model": str(a.speaker_model or "bundled"), "sets": {}}
    if a.tune:
        grid, merge_grid = ([float(v) for v in g.split(",")] for g in (a.tune_grid, a.tune_merge_grid))
        cfg, rows = tune(embedder, simulated_dev(a.bank or "data/bank", a.tune, 12345), cfg, grid, merge_grid)
        report["tuning"] = rows
        tried = [f"{r['threshold']:.2f}/{r['merge_threshold']:.1f}:{100 * r['cp_wer']:.1f}%" for r in rows]
        print("tuning (threshold/merge: cpWER): " + ", ".join(tried), file=sys.stderr)
    report["clusterer"] = {k: getattr(cfg, k) for k in TUNABLE}
    if a.save_tuned:
        save_clustering(a.speaker_model or PRETRAINED_DIR, report["clusterer"])
    t0 = time.process_time()
    audio = 0.0
    for spec in a.sets:
        sessions = read_eval_set(spec)
        audio += sum(e.session.duration for e in sessions)
        items: list[Labelled] = []
        for e in sessions:
            c = replace(cfg, max_speakers=len(e.session.speakers)) if a.max_speakers_hint else cfg
            emb = embed_session(e.session, embedder)
            live, revised = label_online(e.session, c, emb)
            items.append(Labelled(e.session, e.family, revised, emb.turns, e.score_words, live))
        entry = summarise(items)
        groups: dict[str, list[Labelled]] = defaultdict(list)
        for it in items:
            groups[it.family].append(it)
        if len(groups) > 1:
            entry["by_family"] = {f: summarise(g) for f, g in sorted(groups.items())}
        report["sets"][spec] = entry
    report["cpu_seconds_per_audio_second"] = (time.process_time() - t0) / max(audio, 1e-9)
    if a.bank:
        report["bank_pair_eer"] = bank_pair_eer(a.bank, embedder)
    cpu = report["cpu_seconds_per_audio_second"]
    md = markdown(report) + f"\nthreshold {cfg.threshold}, merge {cfg.merge_threshold}; labelling CPU {cpu:.4f} s/s\n"
    publish(report, md, a.out)


if __name__ == "__main__":
    main()
