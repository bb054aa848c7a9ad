"""Text tokenisation for the classifier: Hugging Face `tokenizers` trained on the training texts.

`TextTokenizer` wraps a `tokenizers.Tokenizer` with a word-level or BPE model,
HTML line breaks (``<br />``) replaced by spaces, optional lower-casing, a
vocabulary cap and truncation to ``max_length`` tokens keeping the head, the
tail, or the head and tail of long texts. Id 0 is padding ``[PAD]``, id 1 the
unknown token ``[UNK]``. The tokenizer is saved as the standard
``tokenizer.json`` beside the model; `TokenizerConfig` (JSON round trip) declares
the tokenizer's settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, Literal

from pydantic import Field
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from lstmkit.errors import LstmkitError
from lstmkit.settings import Settings

PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
KINDS = ("word", "bpe")
KEEPS = ("head", "tail", "head_tail")


class TokenizerConfig(Settings):
    """Tokeniser settings (a `lstmkit.settings.Settings` model: type, range, help of each).

    A bare kind (``"word"``, ``"bpe"``) stands for the settings with that kind.
    """

    what: ClassVar[str] = "tokenizer"
    shorthand: ClassVar[str | None] = "kind"

    kind: Literal["word", "bpe"] = Field(
        "word", description="word: one id per word or punctuation run; bpe: sub-word units."
    )
    vocab_size: int = Field(30_000, ge=3, description="Vocabulary cap including [PAD] and [UNK].")
    lowercase: bool = Field(True, description="Lower-case before splitting.")
    max_length: int = Field(
        400, ge=0, description="Longest sequence in tokens (longer texts are cut); 0: no limit."
    )
    keep: Literal["head", "tail", "head_tail"] = Field(
        "head",
        description="Part of a long text kept: head, tail, or head_tail (the first quarter "
        "and the last three quarters).",
    )
    min_frequency: int = Field(
        1, ge=1, description="Tokens seen fewer times in training are mapped to [UNK]."
    )


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
