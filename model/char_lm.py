"""A character n-gram language model for shallow fusion in the transducer search.

The transducer's prediction network sees only the last two tokens, so it cannot spell; an n-gram over the same
characters, trained on the text corpus (``data/text/train.txt``: prose the dev and test sentences are split off
by hash), supplies that knowledge at decode time: the search adds ``weight * log P_lm(c | history)`` plus a
per-character ``bonus`` to the joiner's log-probabilities of the characters (not blank, ``<sot>``, ``<eot>``).

Model: interpolated Witten-Bell estimates over contexts of up to ``order - 1`` characters; a turn starts a
sentence (the history restarts after ``<sot>``/``<eot>``). Every kept context (seen at least ``min_count``
times) stores its whole smoothed distribution, so a lookup is one table row: that of the longest kept suffix
of the history. Stored as safetensors (``lm.safetensors``: ``keys`` (K,) int64 sorted, ``logprobs`` (K, 28)
float16) with the order and the pruning count in the metadata.

``python -m model.char_lm data/text/train.txt --order 6 --min-count 5 --out DIR`` builds the bundled one.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from model.tokenizer import CHARS, TOKENS, encode, normalize_text

LM_FILE = "lm.safetensors"
BOS = "^"  # sentence start in the training strings
_SYMBOLS = CHARS  # predicted symbols; their token ids are 1..len(CHARS)
_FIRST_CHAR_ID = TOKENS.index(CHARS[0])
_BOS_DIGIT = len(CHARS) + 1  # key digit of the sentence start; characters are 1..len(CHARS)
_BASE = len(CHARS) + 2
assert TOKENS[_FIRST_CHAR_ID : _FIRST_CHAR_ID + len(CHARS)] == tuple(CHARS), "characters must be consecutive ids"


def _key(digits: Iterable[int]) -> int:
    """A context (oldest symbol first, digits 1.._BOS_DIGIT) as one integer; the empty context is 0."""
    key = 0
    for d in digits:
        key = key * _BASE + d
    return key


def _digit(symbol: str) -> int:
    return _BOS_DIGIT if symbol == BOS else _SYMBOLS.index(symbol) + 1


class CharNgram:
    """Smoothed character n-gram: ``logprobs`` of the next character after a history of token ids."""

    MEMO_SIZE = 1 << 18  # histories whose row :meth:`rows` remembers before its memo starts afresh

    def __init__(self, order: int, keys: torch.Tensor, logprobs: torch.Tensor, min_count: int = 1) -> None:
        """keys: (K,) int64 context keys; logprobs: (K, 28) natural-log probabilities of the characters;
        min_count: the pruning it was built with (kept for the record)."""
        assert order >= 1 and keys.ndim == 1 and logprobs.shape == (keys.shape[0], len(_SYMBOLS))
        self.order = order
        self.min_count = min_count
        self.keys = keys
        self.logprobs = logprobs
        self._row = {int(k): i for i, k in enumerate(keys.tolist())}
        assert 0 in self._row, "the empty context (unigram) must be kept"
        # (K, V) in the model's vocabulary: 0 for blank and the turn tokens, which the LM leaves to the model
        self._vocab = torch.zeros(keys.shape[0], len(TOKENS))
        self._vocab[:, _FIRST_CHAR_ID : _FIRST_CHAR_ID + len(CHARS)] = logprobs.float()
        self._memo: dict[tuple[int, ...], int] = {}  # history -> row, filled by lookups (the search repeats them)

    @property
    def history(self) -> int:
        """Tokens of history a lookup can use (``order - 1``)."""
        return self.order - 1

    # -- building --------------------------------------------------------------------------------------
    @classmethod
    def build(cls, sentences: Iterable[str], order: int = 6, min_count: int = 2) -> CharNgram:
        """Count n-grams of ``BOS + sentence`` and estimate interpolated Witten-Bell distributions."""
        counts: Counter[str] = Counter()  # n-gram strings of 1..order symbols (context + next)
        for s in sentences:
            text = BOS + normalize_text(s)
            for k in range(order):
                counts.update(text[i - k : i + 1] for i in range(max(k, 1), len(text)))
        ctx_next: dict[str, np.ndarray] = {}
        for gram, c in counts.items():
            ctx_next.setdefault(gram[:-1], np.zeros(len(_SYMBOLS)))[_SYMBOLS.index(gram[-1])] += c
        dists: dict[str, np.ndarray] = {}
        for ctx in sorted(ctx_next, key=len):
            vec = ctx_next[ctx]
            total, types = vec.sum(), float((vec > 0).sum())
            if ctx and total < min_count:
                continue
            lower = dists[ctx[1:]] if ctx else np.full(len(_SYMBOLS), 1.0 / len(_SYMBOLS))
            dists[ctx] = (vec + types * lower) / (total + types)
        keys = np.array([_key(_digit(s) for s in ctx) for ctx in dists], dtype=np.int64)
        probs = np.stack(list(dists.values()))
        order_ix = np.argsort(keys)
        logprobs = torch.from_numpy(np.log(probs[order_ix])).half()
        return cls(order, torch.from_numpy(keys[order_ix]), logprobs, min_count)

    # -- lookup ----------------------------------------------------------------------------------------
    def rows(self, context: torch.Tensor) -> list[int]:
        """Table row of each history: (M, L) token ids, oldest first, blank-padded at a stream's start."""
        if not self.history:
            return [0] * len(context)
        out = []
        for tokens in map(tuple, context[:, -self.history :].tolist()):
            row = self._memo.get(tokens)
            if row is None:
                if len(self._memo) >= self.MEMO_SIZE:
                    self._memo.clear()
                row = self._memo[tokens] = self._lookup(tokens)
            out.append(row)
        return out

    def _lookup(self, tokens: tuple[int, ...]) -> int:
        """The row of the longest kept suffix of a history (token ids, oldest first) since its turn began."""
        digits: list[int] = []
        for t in reversed(tokens):  # newest first, up to the start of the turn
            if not _FIRST_CHAR_ID <= t < _FIRST_CHAR_ID + len(CHARS):
                digits.append(_BOS_DIGIT)
                break
            digits.append(t - _FIRST_CHAR_ID + 1)
        digits.reverse()
        suffixes = (_key(digits[start:]) for start in range(len(digits) + 1))  # longest first; the last is 0
        return next(self._row[k] for k in suffixes if k in self._row)

    def vocab_logprobs(self, context: torch.Tensor) -> torch.Tensor:
        """(M, L) histories -> (M, V) log-probabilities in the model's vocabulary (0 for non-characters)."""
        return self._vocab[self.rows(context)]

    def sentence_logprob(self, text: str) -> float:
        """Natural-log probability of a normalised sentence's characters (for tests and perplexity)."""
        ids = encode(text)
        ctx = [0] * max(1, self.history) + ids
        total = 0.0
        for i, t in enumerate(ids):
            row = self.rows(torch.tensor([ctx[: max(1, self.history) + i]]))[0]
            total += float(self._vocab[row, t])
        return total

    # -- storage ---------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / LM_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"order": str(self.order), "min_count": str(self.min_count)}
        save_file({"keys": self.keys, "logprobs": self.logprobs}, str(path), metadata=meta)
        return path

    @classmethod
    def load_if_present(cls, directory: str | Path) -> CharNgram | None:
        """The LM stored in a checkpoint directory, or None when it holds none."""
        return cls.load(directory) if (Path(directory) / LM_FILE).is_file() else None

    @classmethod
    def load(cls, directory: str | Path) -> CharNgram:
        from safetensors import safe_open

        path = Path(directory) / LM_FILE
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
        tensors = load_file(str(path))
        return cls(int(meta["order"]), tensors["keys"], tensors["logprobs"], int(meta.get("min_count", 1)))


@dataclass(frozen=True)
class LmFusion:
    """Shallow fusion: ``weight * log P_lm + bonus`` added to the characters' scores in the search, less
    ``internal_weight * log P_ilm`` when the model's internal LM is given (internal LM estimation, Meng et al.
    2021: the transducer's prediction network has learnt the training sentences' letters too, and the external
    LM is to replace that knowledge rather than add to it).

    ``internal`` is the (V, ..., V, V) table of the internal LM's log-probabilities indexed by the decoder's last C
    tokens and the next one (:func:`model.search.internal_lm`).
    """

    lm: CharNgram
    weight: float
    bonus: float = 0.0
    internal: torch.Tensor | None = None
    internal_weight: float = 0.0
    _table: torch.Tensor = field(init=False, repr=False, compare=False)  # (K, V) bias of every LM row
    _internal: torch.Tensor | None = field(init=False, repr=False, compare=False)  # (V, ..., V, V), characters only

    def __post_init__(self) -> None:
        chars = slice(_FIRST_CHAR_ID, _FIRST_CHAR_ID + len(CHARS))
        table = self.weight * self.lm._vocab
        table[:, chars] += self.bonus
        object.__setattr__(self, "_table", table)
        internal = None
        if self.internal is not None and self.internal_weight:
            internal = torch.zeros_like(self.internal)
            internal[..., chars] = -self.internal_weight * self.internal[..., chars]
        object.__setattr__(self, "_internal", internal)

    def bias(self, context: torch.Tensor) -> torch.Tensor:
        """(M, L) search context -> (M, V) additions to the joiner's log-probabilities."""
        out = self._table[self.lm.rows(context)]
        if self._internal is not None:
            size = self._internal.dim() - 1  # the decoder's context, the last tokens of the search's
            out = out + self._internal[tuple(context[:, -size:].T)]
        return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a character n-gram LM for shallow fusion.")
    parser.add_argument("text", type=Path, help="one sentence a line (e.g. data/text/train.txt)")
    parser.add_argument("--out", type=Path, required=True, help="directory for lm.safetensors")
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--eval", type=Path, default=None, help="text whose per-character perplexity to print")
    args = parser.parse_args(argv)
    lm = CharNgram.build(args.text.read_text().splitlines(), args.order, args.min_count)
    path = lm.save(args.out)
    print(f"{path}: order {lm.order}, {len(lm.keys):,} contexts, {path.stat().st_size / 1e6:.1f} MB")
    if args.eval is not None:
        lines = [normalize_text(s) for s in args.eval.read_text().splitlines() if normalize_text(s)]
        nll = -sum(lm.sentence_logprob(s) for s in lines)
        chars = sum(len(s) for s in lines)
        print(f"{args.eval}: {chars:,} characters, perplexity {np.exp(nll / chars):.2f} per character")


if __name__ == "__main__":
    main()
