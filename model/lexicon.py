"""Word lexicon for spelling repair: a recognised word that is not a known word becomes the most frequent known
word one edit away.

The model spells words character by character, and the character LM sees only a few characters of history, so
many words come out one letter off ("becuase", "meting"). A lexicon of the text corpus's words (with counts)
repairs those: a word of at least ``min_length`` characters that the lexicon does not hold is replaced by the
most frequent lexicon word at edit distance 1 (one character deleted, inserted, replaced, or two neighbours
swapped); a word with no such neighbour, and every known word, stays as it is.

    lexicon = Lexicon.build(open("data/text/train.txt"))   # or Lexicon.load(checkpoint_dir)
    lexicon.correct("becuase")  # -> "because"

Stored with the model as ``lexicon.txt``: one ``word count`` pair a line, most frequent first (plain text:
words, not weights). :class:`model.recognizer.Recognizer` loads it when its checkpoint holds one, and the turn
assembler applies :meth:`Recognizer.spell` to each word as the word completes, so partials, finals, REST and
WebSocket all show the same repaired words.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from model.tokenizer import CHARS

LEXICON_FILE = "lexicon.txt"
_LETTERS = "".join(c for c in CHARS if not c.isspace())  # what a word may be spelled with


class Lexicon:
    """Known words and their corpus counts; :meth:`correct` repairs a word (see the module docstring)."""

    CACHE_SIZE = 1 << 16  # repaired words remembered (the same misspelling recurs), then the memo starts afresh

    def __init__(self, counts: Mapping[str, int], min_length: int = 3) -> None:
        """counts: word -> occurrences in the corpus (> 0); min_length: shorter words are never changed."""
        assert all(c > 0 for c in counts.values()), "counts must be positive"
        self.counts = dict(counts)
        self.min_length = min_length
        self._memo: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.counts)

    def __contains__(self, word: str) -> bool:
        return word in self.counts

    def correct(self, word: str) -> str:
        """``word`` if known or shorter than ``min_length``, else its most frequent known neighbour at edit
        distance 1 (ties: alphabetical), else ``word``."""
        if word in self.counts or len(word) < self.min_length:
            return word
        hit = self._memo.get(word)
        if hit is None:
            known = [w for w in edits1(word) if w in self.counts]
            hit = min(known, key=lambda w: (-self.counts[w], w)) if known else word
            if len(self._memo) >= self.CACHE_SIZE:
                self._memo.clear()
            self._memo[word] = hit
        return hit

    # -- building and storage --------------------------------------------------------------------------
    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1) -> Lexicon:
        """Count the words of normalised sentences (one per item); keep those seen ``min_count`` times."""
        counts = Counter(w for s in sentences for w in s.split())
        return cls({w: c for w, c in counts.items() if c >= min_count})

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / LEXICON_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        ordered = sorted(self.counts.items(), key=lambda wc: (-wc[1], wc[0]))
        path.write_text("".join(f"{w} {c}\n" for w, c in ordered), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Lexicon:
        counts: dict[str, int] = {}
        path = Path(directory) / LEXICON_FILE
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(f"{path}:{n}: expected 'word count', got {line!r}")
            counts[parts[0]] = int(parts[1])
        return cls(counts)

    @classmethod
    def load_if_present(cls, directory: str | Path) -> Lexicon | None:
        """The lexicon stored in a checkpoint directory, or None when it holds none."""
        return cls.load(directory) if (Path(directory) / LEXICON_FILE).is_file() else None


def edits1(word: str) -> set[str]:
    """Every string one edit from ``word``: a deletion, a transposition of neighbours, a replacement or an
    insertion of one of the model's letters."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    inserts = {a + c + b for a, b in splits for c in _LETTERS}
    return (deletes | swaps | replaces | inserts) - {word}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the word lexicon for spelling repair.")
    parser.add_argument("text", type=Path, help="one normalised sentence a line (e.g. data/text/train.txt)")
    parser.add_argument("--out", type=Path, required=True, help="directory for lexicon.txt")
    parser.add_argument("--min-count", type=int, default=1)
    args = parser.parse_args(argv)
    lexicon = Lexicon.build(args.text.read_text(encoding="utf-8").splitlines(), args.min_count)
    path = lexicon.save(args.out)
    print(f"{path}: {len(lexicon):,} words, {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
