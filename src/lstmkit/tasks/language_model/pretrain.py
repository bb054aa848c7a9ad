"""`pretrain`: learn a tokenizer and an encoder from unlabelled text, as a language model.

Labelled texts are scarce, unlabelled ones are not. `pretrain` learns, from any
`lstmkit.data.corpus.TextCorpus` streamed from disk:

1. the tokenizer (on the whole corpus);
2. the word vectors and the recurrent encoder, the same ``embedding`` and ``rnn``
   modules a `TextClassifierNet` has (`network.make_encoder`), trained as a language
   model: the forward direction predicts the next token from the text so far, the
   backward direction (a bidirectional encoder) the previous token from the rest of
   the text. Both directions share one adaptive softmax (Grave et al. 2017,
   ``torch.nn.AdaptiveLogSoftmaxWithLoss``), which makes a 30,000-40,000-word output
   layer affordable on a CPU.

A stacked bidirectional encoder cannot be pretrained this way (its second layer would
see each direction's future through the other direction) and is refused in one line.

The corpus is never held in memory (`stream.LanguageModelStream`); every 100th text, up
to ``val_texts``, is held out to measure validation perplexity. ``max_minutes`` bounds
the run's wall time: the epoch in progress ends at the budget (its validation still
runs) and pretraining stops.

Resuming (``checkpoint_dir``, with ``checkpoint_every_n_steps`` for long epochs): the
stream's position (the epoch in progress and the batches it has yielded) is part of
every checkpoint, and the batches of an epoch are a function of the corpus, the seed
and the epoch, so a resumed run reads the epoch again up to that position (tokenising
it, without training on it) and goes on with the very batches, dropout masks and
bookkeeping (training loss, tokens, seconds, training curve) of a run never
interrupted: it ends with the same weights and history (`PretrainInfo` records where it
resumed).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from lstmkit.data.corpus import TextCorpus
from lstmkit.data.tokenize import TextTokenizer
from lstmkit.tasks.language_model.encoder import PretrainedEncoder, PretrainInfo
from lstmkit.tasks.language_model.module import LanguageModelModule
from lstmkit.tasks.language_model.network import LanguageModelNet, require_finite_weights
from lstmkit.tasks.language_model.settings import (
    EncoderSettings,
    PretrainSettings,
    check_pretrainable,
)
from lstmkit.tasks.language_model.stream import LanguageModelData
from lstmkit.training import FitResult, TrainConfig, require_precision_supported
from lstmkit.training import fit as train


def pretrain(
    corpus: TextCorpus,
    config: EncoderSettings,
    settings: PretrainSettings,
    *,
    tokenizer: TextTokenizer | None = None,
    run_options: dict[str, Any] | None = None,
    progress: bool = True,
    accelerator: str = "cpu",
    devices: int | str = 1,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> PretrainedEncoder:
    """Pretrain the encoder of ``config`` on ``corpus`` (see the module docstring).

    ``config``: the settings of the model the encoder is for (a `TextClassifierConfig`).
    ``tokenizer``: reuse one (default: learn it from the corpus with
    ``config.tokenizer``). ``run_options``: checkpoint_dir, checkpoint_every_n_steps,
    logger, log_dir (as for `TextClassifier`): a killed run rerun with the same
    checkpoint folder resumes from its last checkpoint.
    """
    require_precision_supported(settings.precision, accelerator)
    check_pretrainable(config)
    corpus.check()
    torch.manual_seed(settings.seed)
    world = devices if isinstance(devices, int) else 1
    data = LanguageModelData(
        corpus, config.tokenizer, settings, tokenizer=tokenizer, world_size=world
    )
    data.setup("fit")
    assert data.tokenizer is not None and data.stream is not None
    net = LanguageModelNet(data.tokenizer.vocab_size, config, settings.output_dropout)
    module = LanguageModelModule(net, data.stream, settings, on_epoch)
    train_cfg = _train_config(settings, run_options, progress, accelerator, devices)
    with warnings.catch_warnings():
        # the stream knows its exact length per process; Lightning's caution is for workers
        warnings.filterwarnings("ignore", message=".*IterableDataset.*has `__len__` defined")
        result = train(
            module,
            data.train_dataloader(),
            data.val_dataloader(),
            train_cfg,
            fingerprint=lambda: _fingerprint(config, settings, data),  # to checkpoint only
        )
    net.cpu().eval()
    require_finite_weights(
        net.state_dict(),
        "pretraining diverged: the weights became NaN or infinite",
        "lower lr or gradient_clip_val and pretrain again",
    )
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    history = _history(result, module)
    info = _info(result, module, data)
    return PretrainedEncoder(config, settings, data.tokenizer, state, history, info, module.steps)


def _train_config(
    settings: PretrainSettings,
    run_options: dict[str, Any] | None,
    progress: bool,
    accelerator: str,
    devices: int | str,
) -> TrainConfig:
    """The `TrainConfig` of a pretraining run (no early stopping; Adam; checkpoints and
    loggers from ``run_options``)."""
    options = dict(run_options or {})
    if settings.checkpoint_every_n_steps is not None:
        options["checkpoint_every_n_steps"] = settings.checkpoint_every_n_steps
    return TrainConfig(
        max_epochs=settings.max_epochs,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        gradient_clip_val=settings.gradient_clip_val,
        early_stopping_patience=None,
        seed=settings.seed,
        precision=settings.precision,
        deterministic=False,
        accelerator=accelerator,
        devices=devices,
        progress=progress,
        **options,
    )


def _fingerprint(
    config: EncoderSettings, settings: PretrainSettings, data: LanguageModelData
) -> str:
    """What a pretraining run's checkpoints must match: the settings, the tokenizer and
    the corpus (its description and counts)."""
    assert data.tokenizer is not None and data.stats is not None
    stats = data.stats
    h = hashlib.sha256()
    h.update(json.dumps({"config": config.to_dict(), "settings": settings.to_dict()}).encode())
    h.update(data.tokenizer.to_json().encode("utf-8"))
    h.update(
        f"{data.corpus.describe}:{stats.texts}:{stats.train_tokens}:{stats.val_tokens}".encode()
    )
    return h.hexdigest()


def _history(result: FitResult, module: LanguageModelModule) -> list[dict[str, float]]:
    """The trainer's per-epoch history with each epoch's tokens, seconds and perplexities."""
    for row in result.history:
        epoch = int(row["epoch"])
        if epoch in module.epoch_tokens:
            row["tokens"] = module.epoch_tokens[epoch]
        if epoch in module.epoch_seconds:
            row["seconds"] = module.epoch_seconds[epoch]
        for split in ("train", "val"):
            if f"{split}_loss" in row and row[f"{split}_loss"] < 700:
                row[f"{split}_perplexity"] = math.exp(row[f"{split}_loss"])
    return result.history


def _info(result: FitResult, module: LanguageModelModule, data: LanguageModelData) -> PretrainInfo:
    """`PretrainInfo` of a finished run."""
    assert data.tokenizer is not None and data.stats is not None and data.stream is not None
    stats = data.stats
    best = result.best_val_loss
    tokens = max(module.epoch_tokens.values(), default=0.0)
    info = PretrainInfo(
        corpus=data.corpus.describe,
        texts=stats.texts,
        train_texts=stats.train_texts,
        val_texts=stats.val_texts,
        train_tokens_per_epoch=stats.train_tokens,
        vocab_size=data.tokenizer.vocab_size,
        tokenizer_seconds=data.tokenizer_seconds,
        scan_seconds=data.scan_seconds,
        fit_seconds=result.fit_seconds,
        epochs_run=result.epochs_run,
        stopped_by_time=module.out_of_time,
        tokens_per_second=max(tokens - module.tokens_before * result.world_size, 0.0)
        / max(result.fit_seconds, 1e-9),
        best_epoch=result.best_epoch,
        val_perplexity=math.exp(best) if math.isfinite(best) and best < 700 else math.nan,
        world_size=result.world_size,
        epoch_batches=len(data.stream),
    )
    if module.resumed is not None:
        info.resumed_at_step = module.resumed["step"]
        info.resumed_epoch = module.resumed["epoch"]
        info.resumed_batches = module.resumed["batches"]
    return info
