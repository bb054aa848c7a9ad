"""Tokenizer (word-level and BPE) and length-bucketed padded batches."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import SequentialSampler

from lstmkit.data.text_batches import BucketBatchSampler, make_loader, pad_batch
from lstmkit.data.tokenize import (
    PAD_ID,
    UNK_ID,
    TextTokenizer,
    TokenizerConfig,
    truncate,
)
from lstmkit.errors import LstmkitError

TEXTS = [
    "The film was GREAT.<br /><br />Great acting, great plot!",
    "A dull film<br/>with dull acting.",
    "great great film",
    "The plot was thin but the acting was great",
]


def test_word_level_lowercases_and_cleans_br():
    tok = TextTokenizer.train(TEXTS, TokenizerConfig(kind="word", max_length=0))
    assert tok.tokens("The film was GREAT.<br /><br />Great acting") == [
        "the", "film", "was", "great", ".", "great", "acting",
    ]  # fmt: skip
    assert "<" not in tok.tokenizer.get_vocab() and "br" not in tok.tokenizer.get_vocab()
    assert (
        tok.tokenizer.token_to_id("[PAD]") == PAD_ID
        and tok.tokenizer.token_to_id("[UNK]") == UNK_ID
    )


def test_word_level_round_trip_and_unknown():
    tok = TextTokenizer.train(TEXTS, TokenizerConfig(kind="word", max_length=0))
    ids = tok.encode(["the acting was great"])[0]
    assert tok.decode(ids) == "the acting was great"
    ids = tok.encode(["the zebra was great"])[0]
    assert ids[1] == UNK_ID and len(ids) == 4


def test_vocab_cap_keeps_most_frequent():
    texts = ["alpha " * 5 + "beta " * 4, "gamma " * 3 + "delta " * 2 + "epsilon"]
    tok = TextTokenizer.train(texts, TokenizerConfig(kind="word", vocab_size=5))
    vocab = tok.tokenizer.get_vocab()
    assert tok.vocab_size == 5
    assert set(vocab) == {"[PAD]", "[UNK]", "alpha", "beta", "gamma"}
    assert tok.encode(["delta alpha"]) == [[UNK_ID, vocab["alpha"]]]


def test_bpe_round_trip():
    tok = TextTokenizer.train(TEXTS * 5, TokenizerConfig(kind="bpe", vocab_size=120, max_length=0))
    text = "the acting was great"
    ids = tok.encode([text])[0]
    assert UNK_ID not in ids
    assert tok.decode(ids) == text
    # an unseen word is split into known sub-words, not mapped to [UNK]
    assert UNK_ID not in tok.encode(["greating"])[0]
    assert len(tok.encode(["greating"])[0]) >= 2


@pytest.mark.parametrize(
    ("keep", "expected"),
    [("head", [0, 1, 2, 3]), ("tail", [6, 7, 8, 9]), ("head_tail", [0, 7, 8, 9])],
)
def test_truncate_by_hand(keep, expected):
    assert truncate(range(10), 4, keep) == expected
    assert truncate(range(3), 4, keep) == [0, 1, 2]
    assert truncate(range(10), 0, keep) == list(range(10))


def test_truncation_applies_to_encode():
    tok = TextTokenizer.train(TEXTS, TokenizerConfig(max_length=3, keep="tail"))
    assert tok.tokens("a dull film with dull acting") == ["with", "dull", "acting"]
    assert tok.encode(["<br />"]) == [[UNK_ID]]  # nothing left: one [UNK], length 1


def test_save_load_same_ids_and_config_json_round_trip():
    cfg = TokenizerConfig(kind="bpe", vocab_size=80, max_length=7, keep="head_tail")
    tok = TextTokenizer.train(TEXTS * 3, cfg)
    again = TextTokenizer.from_json(
        tok.to_json(), TokenizerConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    )
    assert again.config == cfg
    assert again.encode(TEXTS) == tok.encode(TEXTS)
    with pytest.raises(LstmkitError, match="not a readable tokenizer"):
        TextTokenizer.from_json("{broken", cfg)


def test_bad_config():
    with pytest.raises(
        LstmkitError, match="tokenizer setting kind must be one of word, bpe, got 'char'"
    ):
        TokenizerConfig(kind="char")
    with pytest.raises(LstmkitError, match=r"tokenizer setting keep must be one of .*'middle'"):
        TokenizerConfig(keep="middle")


def test_pad_batch_by_hand():
    batch = pad_batch([([5, 6, 7], 1), ([8], 0)])
    assert batch["ids"].tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert batch["lengths"].tolist() == [3, 1] and batch["lengths"].dtype == torch.int64
    assert batch["labels"].tolist() == [1, 0]


def test_bucket_sampler_covers_all_once_and_groups_lengths():
    lengths = [((i * 37) % 101) + 1 for i in range(1000)]
    kw = dict(lengths=lengths, shuffle=True, seed=3, pool_batches=10)
    sampler = BucketBatchSampler(SequentialSampler(lengths), 16, **kw)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1000))

    # padding waste is far below that of random batches
    def waste(groups):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in groups)

    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    random_batches = [perm[i : i + 16] for i in range(0, 1000, 16)]
    assert waste(batches) < 0.2 * waste(random_batches)
    again = list(BucketBatchSampler(SequentialSampler(lengths), 16, **kw))
    assert again == batches  # same seed, same first epoch
    assert list(sampler) != batches  # next epoch, new order


def test_bucket_order_follows_the_epoch_lightning_sets():
    """A resumed run starts a fresh loader at a later epoch: Lightning's set_epoch must
    give it the order an uninterrupted loader has at that epoch, not its first one."""
    ids = [[1] * (1 + (i * 7) % 13) for i in range(40)]
    labels = [i % 2 for i in range(40)]
    loader = make_loader(ids, labels, 4, shuffle=True, seed=2)
    passes = [list(loader.batch_sampler) for _ in range(3)]  # epochs 0, 1, 2
    assert passes[0] != passes[2]
    fresh = make_loader(ids, labels, 4, shuffle=True, seed=2)
    fresh.batch_sampler.sampler.set_epoch(2)  # what Lightning calls at each epoch start
    assert list(fresh.batch_sampler) == passes[2]


def test_loader_without_shuffle_sorts_longest_first():
    ids = [[1] * n for n in (2, 5, 3)]
    loader = make_loader(ids, [0, 1, 0], 2, shuffle=False)
    first = next(iter(loader))
    assert first["lengths"].tolist() == [5, 3]


def test_bucket_sampler_splits_between_ddp_ranks():
    """Rebuilt by Lightning around a DistributedSampler (only sampler, batch_size, drop_last
    passed), each rank batches its own half, shuffled and bucketed as in one process."""
    from torch.utils.data.distributed import DistributedSampler

    ids = [[1] * (((i * 37) % 101) + 1) for i in range(301)]
    loader = make_loader(ids, [0] * 301, 16, shuffle=True, seed=5)
    data = loader.dataset
    ranks = []
    for rank in (0, 1):
        dist = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=False)
        rebuilt = type(loader.batch_sampler)(dist, batch_size=16, drop_last=False)
        assert rebuilt.shuffle and rebuilt.seed == 5  # kept through the dataset
        ranks.append(list(rebuilt))
    assert len(ranks[0]) == len(ranks[1]) == 10  # same number of steps on both ranks
    flat = [i for batches in ranks for b in batches for i in b]
    assert len(flat) == 302 and set(flat) == set(range(301))  # one index padded, as torch does
    assert set(ranks[0][0]) <= set(range(0, 301, 2))  # rank 0 keeps its own share
