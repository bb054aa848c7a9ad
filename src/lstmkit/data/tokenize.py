"""Text tokenisation for the classifier: Hugging Face `tokenizers` trained on the training texts.

`TextTokenizer` wraps a `tokenizers.Tokenizer` with a word-level or BPE model,
HTML line breaks (``<br />``) replaced by spaces, optional lower-casing, a
vocabulary cap and truncation to ``max_length`` tokens keeping the head, the
tail, or the head and tail of long texts. Id 0 is padding ``[PAD]``, id 1 the
unknown token ``[UNK]``. The tokenizer is saved as the standard
``tokenizer.json`` beside the model; `TokenizerConfig` (JSON round trip) holds
the settings that are ours (truncation).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from lstmkit.config import check_field_types
from lstmkit.errors import LstmkitError

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
KINDS = ("word", "bpe")
KEEPS = ("head", "tail", "head_tail")

#: an example value of each setting, shown when a value has the wrong type
_TOKENIZER_EXAMPLES = {
    "kind": "'word'", "vocab_size": "30000", "lowercase": "True", "max_length": "400",
    "keep": "'head'", "min_frequency": "1",
}  # fmt: skip


@dataclass
class TokenizerConfig:
    """Tokeniser settings.

    kind: "word" (one id per word or punctuation run) or "bpe" (sub-word units).
    vocab_size: vocabulary cap including [PAD] and [UNK] (seed 003: 10,000 words).
    lowercase: lower-case before splitting.
    max_length: longest sequence in tokens (longer texts are truncated); 0 = no limit.
    keep: which part of a long text survives truncation: "head" (the start),
        "tail" (the end) or "head_tail" (the first quarter and the last three quarters).
    min_frequency: tokens seen fewer times in training are mapped to [UNK].
    """

    kind: str = "word"
    vocab_size: int = 30_000
    lowercase: bool = True
    max_length: int = 400
    keep: str = "head"
    min_frequency: int = 1

    def __post_init__(self) -> None:
        check_field_types(self, "tokenizer", _TOKENIZER_EXAMPLES)
        if self.kind not in KINDS:
            raise LstmkitError(f"unknown tokenizer kind {self.kind!r}; expected one of {KINDS}")
        if self.keep not in KEEPS:
            raise LstmkitError(f"unknown truncation keep={self.keep!r}; expected one of {KEEPS}")
        if self.vocab_size < 3:
            raise LstmkitError(f"vocab_size must be at least 3, got {self.vocab_size}")
        if self.max_length < 0:
            raise LstmkitError(f"max_length must be >= 0 (0 = no limit), got {self.max_length}")
        if self.min_frequency < 1:
            raise LstmkitError(f"min_frequency must be >= 1, got {self.min_frequency}")

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TokenizerConfig:
        """Inverse of `to_dict`; unknown keys are refused (`lstmkit.config.dataclass_from_dict`,
        the one rule for every saved settings object)."""
        from lstmkit.config import dataclass_from_dict

        return dataclass_from_dict(cls, dict(data), "TokenizerConfig")


def truncate(ids: Sequence[int], max_length: int, keep: str = "head") -> list[int]:
    """Cut ``ids`` to at most ``max_length`` items keeping the head, tail or both ends."""
    ids = list(ids)
    if max_length <= 0 or len(ids) <= max_length:
        return ids
    if keep == "head":
        return ids[:max_length]
    if keep == "tail":
        return ids[-max_length:]
    head = max_length // 4
    return ids[:head] + ids[len(ids) - (max_length - head) :]


def _normalizer(lowercase: bool) -> normalizers.Normalizer:
    steps = [normalizers.Replace(Regex(r"<\s*br\s*/?\s*>"), " "), normalizers.NFKC()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    return normalizers.Sequence(steps)


class TextTokenizer:
    """A trained tokenizer: text -> token ids (list of ints, truncated), and back to tokens."""

    def __init__(self, config: TokenizerConfig, tokenizer: Tokenizer) -> None:
        self.config = config
        self.tokenizer = tokenizer

    @classmethod
    def train(
        cls, texts: Iterable[str], config: TokenizerConfig | None = None, *, progress: bool = False
    ) -> TextTokenizer:
        """Learn the vocabulary from ``texts`` (the training texts only)."""
        config = config or TokenizerConfig()
        if config.kind == "word":
            tok = Tokenizer(models.WordLevel(unk_token=UNK))
            trainer = trainers.WordLevelTrainer(
                vocab_size=config.vocab_size,
                min_frequency=config.min_frequency,
                special_tokens=[PAD, UNK],
                show_progress=progress,
            )
        else:
            tok = Tokenizer(models.BPE(unk_token=UNK, continuing_subword_prefix="##"))
            trainer = trainers.BpeTrainer(
                vocab_size=config.vocab_size,
                min_frequency=max(config.min_frequency, 2),
                special_tokens=[PAD, UNK],
                continuing_subword_prefix="##",
                show_progress=progress,
            )
            tok.decoder = decoders.WordPiece(prefix="##")
        tok.normalizer = _normalizer(config.lowercase)
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.train_from_iterator(texts, trainer=trainer)
        if tok.token_to_id(PAD) != PAD_ID or tok.token_to_id(UNK) != UNK_ID:
            raise RuntimeError("special tokens did not get ids 0 and 1")
        return cls(config, tok)

    @property
    def vocab_size(self) -> int:
        """Number of ids (including [PAD] and [UNK])."""
        return self.tokenizer.get_vocab_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, truncated; an empty result becomes ``[UNK]`` (length 1)."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        out = []
        for enc in encodings:
            ids = truncate(enc.ids, self.config.max_length, self.config.keep)
            out.append(ids or [UNK_ID])
        return out

    def tokens(self, text: str) -> list[str]:
        """The tokens the model sees for ``text`` (after truncation), as strings."""
        return [self.tokenizer.id_to_token(i) or UNK for i in self.encode([text])[0]]

    def decode(self, ids: Sequence[int]) -> str:
        """Text from ids (lower-cased and normalised as the model saw it)."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def to_json(self) -> str:
        """The Hugging Face ``tokenizer.json`` text."""
        return self.tokenizer.to_str()

    @classmethod
    def from_json(cls, text: str, config: TokenizerConfig) -> TextTokenizer:
        """Rebuild from a ``tokenizer.json`` text and its `TokenizerConfig`."""
        try:
            tok = Tokenizer.from_str(text)
        except Exception as err:  # the Rust side raises plain Exception
            raise LstmkitError(f"tokenizer.json is not a readable tokenizer ({err})") from None
        return cls(config, tok)
