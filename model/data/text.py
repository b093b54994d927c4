"""The text corpus: real English prose from Debian packages, normalised for speech and split by text.

Sources (installed by ``scripts/setup.sh``):
- ``fortunes`` / ``fortunes-min``: quotations, jokes and sayings in /usr/share/games/fortunes (plain language);
- ``wordnet-base``: the quoted usage examples of WordNet's glosses ("we did not understand his motivation"),
  short everyday sentences.

Normalisation: lower case, numbers and common symbols spelled out, punctuation dropped; only ``a-z``, space and
apostrophe remain. Sentences of 3-25 words are kept, de-duplicated and divided into train / dev / test by a hash
of the normalised sentence, so the split of a sentence never depends on the rest of the corpus.

``python -m model.data.text --out data/text`` writes ``{train,dev,test}.txt`` (one sentence a line).
"""

from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

FORTUNE_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
SKIP_FORTUNE_FILES = {"ascii-art", "art", "translate-me", "perl", "debian", "linux", "linuxcookie", "startrek"}

SPLITS = ("train", "dev", "test")
DEV_PERCENT = 5  # hash buckets 90-94 go to dev
TEST_PERCENT = 5  # hash buckets 95-99 go to test
MIN_WORDS = 3
MAX_WORDS = 25

BACKCHANNELS = ("yeah", "right", "mm hmm", "okay", "uh huh", "i see", "sure", "really", "oh", "exactly", "yes")
"""Short listener responses; the bank synthesises a few of them per voice for the meeting simulator."""

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_to_words(n: int) -> str:
    """Cardinal English words of a non-negative integer: 1234 -> "one thousand two hundred thirty four"."""
    assert n >= 0, n
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return number_to_words(head) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError(n)


def ordinal_words(n: int) -> str:
    """Ordinal English words: 21 -> "twenty first"."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_words(n: int) -> str:
    """A year read in pairs: 1984 -> "nineteen eighty four", 1905 -> "nineteen oh five", 2000 -> "two thousand"."""
    hi, lo = divmod(n, 100)
    if lo == 0:
        return number_to_words(n) if hi % 10 == 0 else number_to_words(hi) + " hundred"
    return number_to_words(hi) + " " + ("oh " + _ONES[lo] if lo < 10 else number_to_words(lo))


def _spell_number(m: re.Match[str]) -> str:
    text = m.group(0).replace(",", "")
    if "." in text:
        whole, frac = text.split(".", 1)
        return f" {number_to_words(int(whole or '0'))} point {' '.join(_ONES[int(d)] for d in frac)} "
    n = int(text)
    if len(text) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099):
        return f" {year_words(n)} "
    if len(text) > 15:  # a long digit string: read digit by digit
        return " " + " ".join(_ONES[int(d)] for d in text) + " "
    return f" {number_to_words(n)} "


_SYMBOLS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\$\s*([0-9][0-9,]*(?:\.[0-9]+)?)"), r" \1 dollars "),
    (re.compile(r"([0-9])\s*%"), r"\1 percent "),
    (re.compile(r"#\s*([0-9])"), r"number \1"),
    (re.compile(r"\b([0-9]+)(st|nd|rd|th)\b"), lambda m: f" {ordinal_words(int(m.group(1)))} "),
    (re.compile(r"&"), " and "),
    (re.compile(r"@"), " at "),
    (re.compile(r"\+"), " plus "),
    (re.compile(r"(?<=\s)=(?=\s)"), " equals "),
    (re.compile(r"\bmr\.", re.I), "mister"),
    (re.compile(r"\bmrs\.", re.I), "missus"),
    (re.compile(r"\bdr\.", re.I), "doctor"),
    (re.compile(r"\bst\.", re.I), "saint"),
    (re.compile(r"\be\.g\.", re.I), "for example"),
    (re.compile(r"\bi\.e\.", re.I), "that is"),
    (re.compile(r"\betc\.", re.I), "et cetera"),
    (re.compile(r"\bvs\.?\s", re.I), "versus "),
]
_NUMBER = re.compile(r"[0-9][0-9,]*(?:\.[0-9]+)?")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})


def normalize(text: str) -> str:
    """Speech form of ``text``: lower case, numbers and symbols spelled out, only ``[a-z' ]`` left.

    >>> normalize("In 1984, Mr. Smith paid $25 for 3 books & 2nd-hand CDs!")
    "in nineteen eighty four mister smith paid twenty five dollars for three books and second hand cds"
    """
    t = text.translate(_APOSTROPHES)
    for pattern, repl in _SYMBOLS:
        t = pattern.sub(repl, t)
    t = _NUMBER.sub(_spell_number, t)
    t = t.lower()
    t = re.sub(r"[^a-z']+", " ", t)
    t = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", t)  # quotes, not apostrophes inside words
    return " ".join(t.split())


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9])")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph of raw prose (before normalisation)."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(paragraph.split())) if s.strip()]


def _looks_like_prose(raw: str) -> bool:
    """False for code, ASCII art, tables and the like."""
    if not raw:
        return False
    plain = sum(c.isalpha() or c.isspace() or c in ".,;:!?'\"-()$%&0123456789" for c in raw)
    return plain / len(raw) > 0.97 and not re.search(r"[A-Za-z]{25,}|\s{3,}|_{2,}|[<>{}|\\]", raw)


def fortune_paragraphs(directory: Path = FORTUNE_DIR) -> Iterator[str]:
    """Each fortune of the installed English fortune files as one paragraph, attribution lines dropped."""
    if not directory.is_dir():
        return
    for path in sorted(directory.iterdir()):
        if path.suffix or path.is_symlink() or path.name in SKIP_FORTUNE_FILES:
            continue
        raw = path.read_bytes().decode("utf-8", errors="replace")
        for cookie in raw.split("\n%\n"):
            lines = [ln for ln in cookie.splitlines() if not re.match(r"^\s*(--|~~|-- )", ln)]
            if any(re.match(r"^\s*[A-Z][A-Za-z .]*:\s", ln) for ln in lines[:2]):
                lines = [re.sub(r"^\s*[A-Z][A-Za-z .]*:\s+", "", ln) for ln in lines]  # dialogue "Q: ..."
            yield " ".join(lines)


def wordnet_examples(directory: Path = WORDNET_DIR) -> Iterator[str]:
    """The quoted usage examples in WordNet's glosses."""
    for name in ("data.noun", "data.verb", "data.adj", "data.adv"):
        path = directory / name
        if not path.is_file():
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # licence header
                _, _, gloss = line.partition(" | ")
                yield from re.findall(r'"([^"]+)"', gloss)


def split_of(sentence: str) -> str:
    """ "train", "dev" or "test" from a hash of the normalised sentence (stable across corpus versions)."""
    bucket = int(hashlib.sha1(sentence.encode()).hexdigest()[:8], 16) % 100
    if bucket >= 100 - TEST_PERCENT:
        return "test"
    if bucket >= 100 - TEST_PERCENT - DEV_PERCENT:
        return "dev"
    return "train"


def corpus_sentences() -> Iterator[str]:
    """Normalised sentences of 3-25 words from every source, in a fixed order, with repeats."""
    for paragraph in fortune_paragraphs():
        for raw in split_sentences(paragraph):
            if _looks_like_prose(raw):
                yield normalize(raw)
    for raw in wordnet_examples():
        if _looks_like_prose(raw):
            yield normalize(raw)


def build_corpus() -> dict[str, list[str]]:
    """Unique sentences by split, each list ordered by the sentence hash (a fixed pseudo-random order)."""
    seen: set[str] = set()
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for sentence in corpus_sentences():
        words = sentence.split()
        if not MIN_WORDS <= len(words) <= MAX_WORDS or sentence in seen:
            continue
        if any(len(w) > 20 for w in words) or sum(len(w) == 1 for w in words) > len(words) // 2:
            continue
        seen.add(sentence)
        out[split_of(sentence)].append(sentence)
    for split in SPLITS:
        out[split].sort(key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    if not out["train"]:
        raise RuntimeError(
            f"no text found: install the Debian packages fortunes, fortunes-min and wordnet-base "
            f"({FORTUNE_DIR}, {WORDNET_DIR})"
        )
    return out


def load_sentences(text_dir: str | Path, split: str) -> list[str]:
    """The sentences of ``split`` written by :func:`write_corpus`."""
    path = Path(text_dir) / f"{split}.txt"
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln]


def write_corpus(out: str | Path) -> dict[str, dict[str, int]]:
    """Write ``{train,dev,test}.txt`` under ``out``; returns counts (sentences, words, vocab) per split."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus()
    stats: dict[str, dict[str, int]] = {}
    for split, sentences in corpus.items():
        (out / f"{split}.txt").write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
        words = [w for s in sentences for w in s.split()]
        stats[split] = {"sentences": len(sentences), "words": len(words), "vocab": len(set(words))}
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/text", help="output folder")
    args = parser.parse_args(argv)
    stats = write_corpus(args.out)
    print(f"{'split':6} {'sentences':>10} {'words':>10} {'vocab':>8}")
    for split, s in stats.items():
        print(f"{split:6} {s['sentences']:>10} {s['words']:>10} {s['vocab']:>8}")


if __name__ == "__main__":
    main()
