"""Character vocabulary with turn tokens: blank, a-z, space, apostrophe, <sot>, <eot>."""

from __future__ import annotations

import re

BLANK = "<blank>"
SOT = "<sot>"  # start of a speaker turn
EOT = "<eot>"  # end of a speaker turn
CHARS = "abcdefghijklmnopqrstuvwxyz '"
TOKENS: tuple[str, ...] = (BLANK, *CHARS, SOT, EOT)

BLANK_ID = 0
SOT_ID = TOKENS.index(SOT)
EOT_ID = TOKENS.index(EOT)
_ID = {t: i for i, t in enumerate(TOKENS)}
_NOT_IN_VOCAB = re.compile(r"[^a-z' ]+")


def normalize_text(text: str) -> str:
    """Lower-case, drop characters outside the vocabulary, squeeze spaces."""
    text = _NOT_IN_VOCAB.sub(" ", text.lower())
    return " ".join(text.split())


def encode(text: str) -> list[int]:
    """Token ids of normalised ``text`` (characters only, no turn tokens)."""
    return [_ID[c] for c in normalize_text(text)]


def encode_turn(text: str) -> list[int]:
    """``<sot> text <eot>`` as token ids."""
    return [SOT_ID, *encode(text), EOT_ID]


def decode(ids: list[int]) -> str:
    """Token ids back to text; turn tokens and blanks are dropped."""
    return "".join(TOKENS[i] for i in ids if i not in (BLANK_ID, SOT_ID, EOT_ID))


def vocab_size() -> int:
    return len(TOKENS)
