"""Word lexicon: spelling repair one edit away, storage, and where the transcript applies it."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.lexicon import LEXICON_FILE, Lexicon, edits1

CORPUS = ["the meeting starts now", "because the meeting ran late", "we met at the meeting", "the mating season"]


def test_edits1_are_the_one_edit_neighbours() -> None:
    e = edits1("cat")
    assert {"at", "ct", "ca", "act", "cta", "bat", "cot", "cab", "cats", "scat", "ca't"} <= e
    assert "cat" not in e and "dog" not in e and "tac" not in e  # two edits away
    assert all(abs(len(w) - 3) <= 1 for w in e)


def test_correct_repairs_unknown_words_with_the_most_frequent_neighbour() -> None:
    lex = Lexicon.build(CORPUS)
    assert lex.correct("meting") == "meeting"  # a deletion; "meting" is one from "meeting" (3) and "mating" (1)
    assert lex.correct("becuase") == "because"  # two neighbours swapped
    assert lex.correct("meetinh") == "meeting"  # a replacement
    assert lex.correct("staarts") == "starts"  # an insertion
    assert lex.correct("meeting") == "meeting" and lex.correct("mating") == "mating"  # known words stay
    assert lex.correct("zzyzx") == "zzyzx"  # nothing one edit away: unchanged
    assert lex.correct("wx") == "wx"  # shorter than min_length: never changed ("we" is one edit away)
    assert lex.correct("meting") == "meeting"  # memoised answer is the same


def test_ties_go_alphabetically_and_min_count_prunes() -> None:
    lex = Lexicon({"bat": 2, "cat": 2})
    assert lex.correct("aat") == "bat"
    pruned = Lexicon.build(CORPUS, min_count=2)
    assert "meeting" in pruned and "mating" not in pruned and len(pruned) == 2  # "the", "meeting"


def test_save_and_load_round_trip_and_reject_damage(tmp_path: Path) -> None:
    lex = Lexicon.build(CORPUS)
    path = lex.save(tmp_path)
    assert path.name == LEXICON_FILE and path.read_text().splitlines()[0] == "the 4"  # most frequent first
    again = Lexicon.load(tmp_path)
    assert again.counts == lex.counts
    assert Lexicon.load_if_present(tmp_path / "nothing") is None
    path.write_text("the 5\nbroken line here\n")
    with pytest.raises(ValueError, match="expected 'word count'"):
        Lexicon.load(tmp_path)


def test_command_line_builds_the_lexicon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from model.lexicon import main

    text = tmp_path / "train.txt"
    text.write_text("\n".join(CORPUS) + "\n")
    main([str(text), "--out", str(tmp_path / "lex")])
    assert Lexicon.load(tmp_path / "lex").counts["meeting"] == 3
    assert "12 words" in capsys.readouterr().out


def test_recognizer_spells_with_its_checkpoints_lexicon(tmp_path: Path) -> None:
    from model.checkpoint import random_model, save_model
    from model.config import StsConfig
    from model.recognizer import Recognizer

    ckpt = save_model(random_model(StsConfig.tiny(), seed=0), tmp_path / "ckpt")
    assert Recognizer.from_pretrained(ckpt).spell("meting") == "meting"  # no lexicon: words pass unchanged
    Lexicon.build(CORPUS).save(ckpt)
    rec = Recognizer.from_pretrained(ckpt)
    assert rec.spell("meting") == "meeting"
    assert rec.with_search(rec.config.streaming).spell("meting") == "meeting"  # a sweep keeps the lexicon
