"""The character n-gram LM and its shallow fusion into the streaming search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.char_lm import CharNgram, LmFusion
from model.checkpoint import save_model
from model.decoder import DecoderTable
from model.recognizer import Recognizer
from model.search import internal_lm
from model.tokenizer import BLANK_ID, EOT_ID, SOT_ID, TOKENS, encode
from tests.test_streaming import feed, key

CORPUS = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "that is the hat"] * 3


@pytest.fixture(scope="module")
def lm() -> CharNgram:
    return CharNgram.build(CORPUS, order=4, min_count=1)


def history(text: str, width: int = 3, turn_start: bool = False) -> torch.Tensor:
    """(1, width) search context ending in ``text``'s characters (after a <sot> when ``turn_start``)."""
    ids = ([SOT_ID] if turn_start else []) + encode(text)
    return torch.tensor([([BLANK_ID] * width + ids)[-width:]])


def test_every_context_holds_a_distribution(lm: CharNgram) -> None:
    sums = lm.logprobs.float().exp().sum(dim=1)
    torch.testing.assert_close(sums, torch.ones_like(sums), atol=5e-3, rtol=0)


def test_the_corpus_is_likelier_than_its_letters_shuffled(lm: CharNgram) -> None:
    shuffled = "".join(np.random.default_rng(0).permutation(list("the cat sat on the mat")))
    assert lm.sentence_logprob("the cat sat on the mat") > lm.sentence_logprob(shuffled) + 10
    after_th = lm.vocab_logprobs(history("th"))[0]
    assert after_th[TOKENS.index("e")] > after_th[TOKENS.index("x")] + 2


def test_a_turn_token_restarts_the_history(lm: CharNgram) -> None:
    """After <sot> (or a stream's blank padding) the LM is at a sentence start, whatever came before it."""
    start = lm.vocab_logprobs(history("", turn_start=True))
    assert torch.equal(start, lm.vocab_logprobs(history("")))
    assert torch.equal(lm.vocab_logprobs(torch.tensor([[TOKENS.index("x"), EOT_ID, SOT_ID]])), start)
    assert not torch.equal(start, lm.vocab_logprobs(history("t")))
    # sentences start with "t" or "a" in the corpus: both far likelier first letters than "o"
    assert start[0, TOKENS.index("t")] > start[0, TOKENS.index("o")] + 1


def test_round_trip(lm: CharNgram, tmp_path: Path) -> None:
    lm.save(tmp_path)
    back = CharNgram.load(tmp_path)
    assert (back.order, back.min_count) == (lm.order, lm.min_count) == (4, 1)
    assert torch.equal(back.keys, lm.keys) and torch.equal(back.logprobs, lm.logprobs)
    assert CharNgram.load_if_present(tmp_path / "none") is None


def test_fusion_biases_characters_only(lm: CharNgram) -> None:
    ctx = torch.cat([history("the c"), history("", turn_start=True)])
    bias = LmFusion(lm, weight=0.5, bonus=1.5).bias(ctx)
    assert bias.shape == (2, len(TOKENS))
    assert bias[:, [BLANK_ID, SOT_ID, EOT_ID]].abs().sum() == 0
    chars = slice(1, SOT_ID)
    torch.testing.assert_close(bias[:, chars], 0.5 * lm.vocab_logprobs(ctx)[:, chars] + 1.5)


def test_fused_search_streams_like_whole_and_changes_the_choice(
    lm: CharNgram, tiny_recognizer: Recognizer, test_audio: np.ndarray
) -> None:
    plain = tiny_recognizer.decode_offline(test_audio)
    zero = Recognizer(tiny_recognizer.model, tiny_recognizer.config.streaming.overridden(lm_weight=0.0), lm)
    assert key(zero.decode_offline(test_audio)) == key(plain)  # weight 0: the LM is not used
    fused = Recognizer(tiny_recognizer.model, tiny_recognizer.config.streaming.overridden(lm_weight=2.0), lm)
    assert fused.context_width == lm.history
    whole = fused.decode_offline(test_audio)
    assert key(whole) != key(plain)
    # the LM history crosses chunk boundaries: a 320 ms-chunked stream decodes exactly as the whole signal
    assert key(feed(fused, fused.create_stream(), test_audio, 1234)) == key(whole)


def test_from_pretrained_loads_the_lm_of_a_checkpoint(
    lm: CharNgram, tiny_recognizer: Recognizer, tmp_path: Path
) -> None:
    save_model(tiny_recognizer.model, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["streaming"]["lm_weight"] = 0.7
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="none was given"):  # the config fuses an LM the folder lacks
        Recognizer.from_pretrained(tmp_path)
    lm.save(tmp_path)
    rec = Recognizer.from_pretrained(tmp_path)
    assert rec.lm is not None and rec.context_width == lm.history


def test_remembered_rows_are_the_looked_up_rows(lm: CharNgram) -> None:
    contexts = torch.cat([history(t, width=4, turn_start=s) for t in ("the c", "a do", "xyzq", "") for s in (0, 1)])
    fresh = CharNgram(lm.order, lm.keys, lm.logprobs)
    first = fresh.rows(contexts)
    assert first == [fresh._lookup(tuple(c)) for c in contexts[:, -fresh.history :].tolist()]
    assert fresh.rows(contexts) == first and len(fresh._memo) == len({tuple(c) for c in contexts.tolist()})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CharNgram, "MEMO_SIZE", 2)  # a full memo starts afresh and answers the same
        small = CharNgram(lm.order, lm.keys, lm.logprobs)
        assert small.rows(contexts) == first and len(small._memo) <= 2


def test_internal_lm_is_the_joiner_without_acoustics_over_non_blank_tokens(tiny_recognizer: Recognizer) -> None:
    model = tiny_recognizer.model
    table = internal_lm(model.decoder, model.joiner)
    vocab, size = len(TOKENS), model.decoder.context_size
    assert table.shape == (vocab,) * size + (vocab,)
    assert torch.isinf(table[..., BLANK_ID]).all()
    sums = table.exp().sum(dim=-1)
    torch.testing.assert_close(sums, torch.ones_like(sums))
    ctx = torch.tensor([[TOKENS.index(c) for c in "th"[-size:]]])
    with torch.no_grad():
        logits = model.joiner.out(torch.tanh(model.decoder.step(ctx)))[0]
    torch.testing.assert_close(table[tuple(ctx[0])][1:], torch.log_softmax(logits[1:], dim=0))
    assert torch.equal(internal_lm(DecoderTable.of(model.decoder), model.joiner), table)  # the search's lookups


def test_internal_lm_estimation_subtracts_the_internal_lm_from_the_characters(
    lm: CharNgram, tiny_recognizer: Recognizer, test_audio: np.ndarray
) -> None:
    model = tiny_recognizer.model
    table = internal_lm(model.decoder, model.joiner)
    ctx = torch.cat([history("the c"), history("", turn_start=True)])
    plain = LmFusion(lm, weight=0.5, bonus=1.5).bias(ctx)
    assert torch.equal(LmFusion(lm, 0.5, 1.5, table, internal_weight=0.0).bias(ctx), plain)
    bias = LmFusion(lm, 0.5, 1.5, table, internal_weight=0.4).bias(ctx)
    size = model.decoder.context_size
    after = table[tuple(ctx[:, -size:].T)]  # (2, V): the internal LM after each context's last tokens
    chars = slice(1, SOT_ID)
    torch.testing.assert_close(bias[:, chars], plain[:, chars] - 0.4 * after[:, chars])
    assert torch.equal(bias[:, [BLANK_ID, SOT_ID, EOT_ID]], plain[:, [BLANK_ID, SOT_ID, EOT_ID]])
    # in the recognizer: a search setting, which needs the LM it corrects, and streams as the whole signal does
    search = tiny_recognizer.config.streaming
    with pytest.raises(ValueError, match="without a fused LM"):
        Recognizer(model, search.overridden(ilm_weight=0.5), lm)
    fused = Recognizer(model, search.overridden(lm_weight=2.0), lm)
    corrected = Recognizer(model, search.overridden(lm_weight=2.0, ilm_weight=1.5), lm)
    whole = corrected.decode_offline(test_audio)
    assert key(whole) != key(fused.decode_offline(test_audio))
    assert key(feed(corrected, corrected.create_stream(), test_audio, 1234)) == key(whole)
