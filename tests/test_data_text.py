"""The text corpus: normalisation, number words, sentence split and the train/dev/test split by text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model.data import text
from model.data.text import normalize, number_to_words, ordinal_words, split_of, split_sentences, year_words

ALLOWED = re.compile(r"^[a-z' ]*$")


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety nine"),
        (100, "one hundred"),
        (115, "one hundred fifteen"),
        (1000, "one thousand"),
        (2024, "two thousand twenty four"),
        (1_000_001, "one million one"),
        (3_400_000_000, "three billion four hundred million"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def test_ordinals_and_years() -> None:
    assert ordinal_words(1) == "first"
    assert ordinal_words(12) == "twelfth"
    assert ordinal_words(20) == "twentieth"
    assert ordinal_words(21) == "twenty first"
    assert year_words(1984) == "nineteen eighty four"
    assert year_words(1905) == "nineteen oh five"
    assert year_words(1900) == "nineteen hundred"


def test_normalize() -> None:
    assert normalize("In 1984, Mr. Smith paid $25 for 3 books & 2nd-hand CDs!") == (
        "in nineteen eighty four mister smith paid twenty five dollars for three books and second hand cds"
    )
    assert normalize("It's 50% off -- 'quoted' words, 3.5 kg") == (
        "it's fifty percent off quoted words three point five kg"
    )
    assert normalize("\u201cDon\u2019t panic!\u201d") == "don't panic"
    for s in ("Hello, World?! (1,234,567)", "a+b = c @ home #1", "\u00e9t\u00e9 \u00fcber na\u00efve"):
        assert ALLOWED.match(normalize(s)), normalize(s)


def test_split_sentences() -> None:
    assert split_sentences("He left. She stayed! Did it work? Yes.") == [
        "He left.",
        "She stayed!",
        "Did it work?",
        "Yes.",
    ]


def test_split_is_by_text_and_deterministic() -> None:
    sentences = [f"sentence number {number_to_words(i)}" for i in range(3000)]
    splits = [split_of(s) for s in sentences]
    assert splits == [split_of(s) for s in sentences]
    share = {s: splits.count(s) / len(splits) for s in text.SPLITS}
    assert 0.85 < share["train"] < 0.95 and 0.03 < share["dev"] < 0.07 and 0.03 < share["test"] < 0.07


def test_corpus_from_installed_packages(tmp_path: Path) -> None:
    if not text.FORTUNE_DIR.is_dir() and not text.WORDNET_DIR.is_dir():
        pytest.skip("no text source installed (apt-get install fortunes fortunes-min wordnet-base)")
    stats = text.write_corpus(tmp_path)
    assert stats["train"]["sentences"] > 5000, stats
    assert stats["dev"]["sentences"] > 200 and stats["test"]["sentences"] > 200, stats
    seen: dict[str, str] = {}
    for split in text.SPLITS:
        lines = text.load_sentences(tmp_path, split)
        assert len(lines) == stats[split]["sentences"]
        for s in lines:
            assert ALLOWED.match(s), s
            assert text.MIN_WORDS <= len(s.split()) <= text.MAX_WORDS, s
            assert seen.setdefault(s, split) == split, f"{s!r} in two splits"
