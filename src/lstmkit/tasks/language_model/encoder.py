"""`PretrainedEncoder`: the result of pretraining, saved and loaded as a model folder.

It holds the tokenizer, the settings (of the model it was pretrained for, and of the
pretraining) and every weight of the language model, and is saved as a model directory
of kind ``"text_encoder"`` (config.json, model.safetensors, tokenizer.json,
training.json, perplexity.png). `TextClassifier.fit(..., pretrained=...)` starts
fine-tuning from it: `adopt` gives a classifier's settings the encoder's
(`ENCODER_FIELDS`), `encoder_state` the weights it takes over.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from lstmkit.config import dataclass_from_dict
from lstmkit.data.tokenize import PAD, PAD_ID, UNK, UNK_ID, TextTokenizer
from lstmkit.errors import LstmkitError
from lstmkit.tasks.language_model.network import LanguageModelNet, require_finite_weights
from lstmkit.tasks.language_model.settings import (
    TRUNCATION_FIELDS,
    EncoderSettings,
    PretrainSettings,
    encoder_config,
)

#: ``kind`` of a pretrained encoder's model directory
KIND = "text_encoder"

C = TypeVar("C", bound=EncoderSettings)


@dataclass
class PretrainInfo:
    """Facts about a pretraining run (training.json's ``info``)."""

    corpus: str = ""
    texts: int = 0
    train_texts: int = 0
    val_texts: int = 0
    train_tokens_per_epoch: int = 0
    vocab_size: int = 0
    tokenizer_seconds: float = 0.0
    scan_seconds: float = 0.0
    fit_seconds: float = 0.0
    epochs_run: int = 0
    stopped_by_time: bool = False
    tokens_per_second: float = 0.0
    best_epoch: int = -1
    val_perplexity: float = math.nan
    world_size: int = 1
    #: where a run resumed from its checkpoint (None: it started afresh): the global step,
    #: the 0-based epoch and the batches of it trained before (of epoch_batches)
    resumed_at_step: int | None = None
    resumed_epoch: int | None = None
    resumed_batches: int | None = None
    epoch_batches: int = 0


@dataclass
class PretrainedEncoder:
    """A pretrained tokenizer + encoder: what `TextClassifier.fit(pretrained=...)` starts from.

    config: the settings of the model it was pretrained for (a `TextClassifierConfig`;
    its `ENCODER_FIELDS` bind a model that uses it); settings: how it was pretrained;
    state: every weight of the language model (``embedding.*``, ``rnn.*``, ``softmax.*``).
    """

    config: EncoderSettings
    settings: PretrainSettings
    tokenizer: TextTokenizer
    state: dict[str, Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    info: PretrainInfo = field(default_factory=PretrainInfo)
    steps: list[dict[str, float]] = field(default_factory=list)

    def encoder_state(self) -> dict[str, Tensor]:
        """``embedding.*`` and ``rnn.*``: the weights a classifier takes over."""
        return {k: v for k, v in self.state.items() if k.startswith(("embedding.", "rnn."))}

    def save(self, path: str | Path, extras: dict[str, str | bytes] | None = None) -> Path:
        """Write the model directory (kind ``"text_encoder"``) atomically."""
        from lstmkit.io import save_model_dir

        files: dict[str, str | bytes] = {
            "tokenizer.json": self.tokenizer.to_json(),
            "training.json": json.dumps(
                {"history": self.history, "info": asdict(self.info), "steps": self.steps},
                indent=1,
                default=float,
            ),
        }
        files.update(extras or {})
        config = {
            "model": self.config.to_dict(),
            "pretraining": self.settings.to_dict(),
            "vocab_size": self.tokenizer.vocab_size,
        }
        return save_model_dir(path, kind=KIND, config=config, state_dict=self.state, extras=files)

    @classmethod
    def load(cls, path: str | Path, config_type: type[EncoderSettings]) -> PretrainedEncoder:
        """Read a folder written by `save`, checking its parts agree (one-line errors).

        ``config_type``: the settings class of the model the encoder was pretrained for
        (`lstmkit.tasks.text_classification.TextClassifierConfig`), which reads
        config.json's ``model``.
        """
        from lstmkit.io import load_model_dir

        path = Path(path)
        saved = load_model_dir(path, KIND)
        config, settings, vocab_size = _read_config(saved.config, path, config_type)
        tokenizer = _read_tokenizer(saved, path, config, vocab_size)
        got = saved.state_dict
        _check_weights(got, path, config, settings, vocab_size)
        history, info, steps = _read_record(path / "training.json")
        return cls(config, settings, tokenizer, dict(got), history, info, steps)

    def adopt(self, config: C, explicit: set[str]) -> C:
        """``config`` with the encoder settings of this encoder.

        ``explicit``: the settings the user gave; one that differs from the encoder's is
        an error naming both values (the weights could not be loaded into it), except
        the tokenizer's `TRUNCATION_FIELDS` (max_length, keep), which are taken as given.
        """
        mine = encoder_config(self.config)
        given = config.to_dict()
        for key in TRUNCATION_FIELDS:  # how long texts are cut may change for fine-tuning
            if key in explicit:
                mine["tokenizer"][key] = given["tokenizer"][key]
        for name, value in mine.items():
            if name == "tokenizer":
                for key, v in value.items():
                    if key in explicit and given["tokenizer"][key] != v:
                        raise LstmkitError(
                            f"the pretrained encoder's tokenizer has {key}={v!r} but {key}="
                            f"{given['tokenizer'][key]!r} was asked for; drop the setting or "
                            "pretrain again with it"
                        )
            elif name in explicit and given[name] != value:
                raise LstmkitError(
                    f"the pretrained encoder has {name}={value!r} but {name}={given[name]!r} "
                    "was asked for; drop the setting or pretrain again with it"
                )
        return config.replace(**mine)

    def fingerprint(self) -> str:
        """SHA-256 of the tokenizer and weights (a fine-tuning run's checkpoints record it)."""
        h = hashlib.sha256(self.tokenizer.to_json().encode("utf-8"))
        for name in sorted(self.state):
            t = self.state[name].detach().contiguous()
            h.update(name.encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()


def _read_config(
    data: Any, path: Path, config_type: type[EncoderSettings]
) -> tuple[EncoderSettings, PretrainSettings, int]:
    """config.json's model settings, pretraining settings and vocabulary size."""
    where = path / "config.json"
    if not isinstance(data, dict) or not {"model", "pretraining", "vocab_size"} <= set(data):
        raise LstmkitError(
            f"{where}: lacks model/pretraining/vocab_size; it is not a pretrained encoder, "
            "pretrain again"
        )
    try:
        config = config_type.from_dict(data["model"])
        settings = PretrainSettings.from_dict(data["pretraining"])
    except LstmkitError as err:
        raise LstmkitError(f"{where}: {err}; pretrain again") from None
    return config, settings, data["vocab_size"]


def _read_tokenizer(
    saved: Any, path: Path, config: EncoderSettings, vocab_size: int
) -> TextTokenizer:
    """tokenizer.json, which must hold ``vocab_size`` tokens with [PAD]=0 and [UNK]=1."""
    try:
        tokenizer = TextTokenizer.from_json(saved.read_text("tokenizer.json"), config.tokenizer)
    except (LstmkitError, UnicodeDecodeError, OSError) as err:
        raise LstmkitError(f"{path / 'tokenizer.json'}: {err}; pretrain again") from None
    tok = tokenizer.tokenizer
    if (
        tokenizer.vocab_size != vocab_size
        or tok.token_to_id(PAD) != PAD_ID
        or (tok.token_to_id(UNK) != UNK_ID)
    ):
        raise LstmkitError(
            f"{path / 'tokenizer.json'}: {tokenizer.vocab_size:,} tokens where config.json "
            f"says {vocab_size:,} (with [PAD]=0, [UNK]=1); the files come from different "
            "runs, pretrain again"
        )
    return tokenizer


def _check_weights(
    got: dict[str, Tensor],
    path: Path,
    config: EncoderSettings,
    settings: PretrainSettings,
    vocab_size: int,
) -> None:
    """Refuse weights of another shape than the settings imply, or not finite."""
    with torch.device("meta"):
        want = LanguageModelNet(vocab_size, config, settings.output_dropout).state_dict()
    for name, tensor in want.items():
        if name not in got or tuple(got[name].shape) != tuple(tensor.shape):
            shape = "missing" if name not in got else f"of shape {list(got[name].shape)}"
            raise LstmkitError(
                f"{path / 'model.safetensors'}: {name} is {shape} but the config needs "
                f"{list(tensor.shape)}; the files come from different runs, pretrain again"
            )
    require_finite_weights(
        got, f"{path / 'model.safetensors'} holds NaN or infinite weights", "pretrain again"
    )


def _read_record(
    record: Path,
) -> tuple[list[dict[str, float]], PretrainInfo, list[dict[str, float]]]:
    """training.json's history, info and training curve (optional: empty when missing
    or unreadable)."""
    if record.exists():
        try:
            rec = json.loads(record.read_text())
            info = dataclass_from_dict(PretrainInfo, rec["info"], "PretrainInfo")
            return list(rec["history"]), info, list(rec.get("steps", []))
        except (ValueError, KeyError, TypeError, AttributeError, LstmkitError):
            pass  # the record is optional
    return [], PretrainInfo(), []
