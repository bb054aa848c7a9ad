"""`TextClassifier`: train, apply, evaluate, explain, save and load a text classifier.

The estimator ties the parts together: ``fit(texts, labels)`` validates the texts,
holds out a stratified validation split, has `TextData` (a Lightning DataModule) learn
the tokenizer (`lstmkit.data.tokenize`) on the training texts and batch both parts,
builds a `TextClassifierNet` and trains its `TextClassifierModule` through
`lstmkit.training.fit`; ``predict`` / ``predict_proba``, ``evaluate`` (accuracy, macro
F1, confusion matrix), ``explain`` (gate activations and attention weights for one
text); ``save`` / ``load`` write and check a model directory (``config.json`` holds a
`ModelState`, ``training.json`` a `TrainingRecord`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lstmkit.data.corpus import TextCorpus
from lstmkit.data.text import (
    Label,
    LabelledTexts,
    as_sequence,
    check_batch_size,
    validate_labelled,
    validate_texts,
)
from lstmkit.data.text_batches import make_loader
from lstmkit.data.tokenize import PAD, PAD_ID, UNK, UNK_ID, TextTokenizer, TokenizerConfig
from lstmkit.data.word_vectors import match_word_vectors, vector_file_dim
from lstmkit.errors import LstmkitError
from lstmkit.settings import warn_deprecated
from lstmkit.tasks.language_model import PretrainedEncoder, PretrainSettings, pretrain
from lstmkit.tasks.text_classification.baseline import (
    NO_MIXTURE,
    BagOfWordsBaseline,
    BaselineSettings,
    mixture_weight,
    score_probabilities,
)
from lstmkit.tasks.text_classification.data import Part, TextData, stratified_split
from lstmkit.tasks.text_classification.metrics import Evaluation, confusion_matrix, macro_f1
from lstmkit.tasks.text_classification.module import TextClassifierModule
from lstmkit.tasks.text_classification.network import (
    TextClassifierNet,
    build_net,
    check_weight_shapes,
    require_finite_weights,
)
from lstmkit.tasks.text_classification.settings import (
    WEIGHT_RANGE,
    TextClassifierConfig,
    make_config,
)
from lstmkit.tasks.text_classification.state import FitInfo, ModelState, TrainingRecord
from lstmkit.training import FitResult, require_precision_supported
from lstmkit.training import fit as train

#: ``kind`` of a text model directory (checked on load)
KIND = "text_classifier"


@dataclass
class GateTrace:
    """What the recurrent layer did on one text (see `TextClassifier.explain`).

    tokens: the T tokens the model read. gates: name -> (T, hidden) activations
    (LSTM: input, forget, output, candidate, cell; GRU: reset, update, candidate,
    hidden) of one layer and direction. attention: (T,) weights or None.
    probabilities: (classes,), predicted: the predicted label.
    """

    tokens: list[str]
    gates: dict[str, np.ndarray]
    attention: np.ndarray | None
    probabilities: np.ndarray
    predicted: Label
    classes: list[Label]
    layer: int
    direction: int
    rnn: str


def _as_list(values: Any, name: str) -> list:
    """``values`` as a list (`lstmkit.data.text.as_sequence`: one bare string, a mapping or
    a set is refused, as `lstmkit.runtime` refuses them)."""
    return as_sequence(values, name)


class TextClassifier:
    """Train, apply, evaluate and save an LSTM/GRU text classifier.

    Example::

        clf = TextClassifier("seed003", max_epochs=2)
        clf.fit(texts, labels)                 # labels: strings or integers
        clf.predict(["a great film"])          # -> ["pos"]
        clf.predict_proba(["a great film"])    # -> (1, 2) array, columns = clf.classes
        clf.evaluate(test_texts, test_labels)  # accuracy, macro F1, confusion matrix
        clf.save("model/"); TextClassifier.load("model/")

    Args:
        preset: None, "seed000", "seed003" or "imdb" (see `PRESETS`).
        config: a full `TextClassifierConfig` or a dict of its settings (instead of
            preset + overrides).
        **overrides: any `TextClassifierConfig` setting by its flat name: the model's
            (``hidden_size``, ``rnn``, ``num_layers``, ...), the tokenizer's
            (``vocab_size``, ``max_length``, ``tokenizer="bpe"`` for the kind) and the
            shared training settings (`TrainConfig`: ``max_epochs``, ``lr``, ``seed``,
            ``precision``, ``accelerator``, ``devices``, ``progress``, ``checkpoint_dir``
            (a later `fit` of the same data and settings with the same folder resumes
            from its ``last.ckpt``), ``logger``, ``log_dir``, ...). The run's folders are
            not saved with the model. The old name ``epochs`` (``max_epochs``) still
            works, with a `FutureWarning`.

    `get_params` / `set_params` / `clone` follow scikit-learn. After `fit` (or `load`),
    ``net`` is the fitted network, ``fit_result`` the training's `FitResult` (its
    ``history`` is also ``history``) and ``fit_info`` the facts of the fit; ``is_fitted``
    says whether there is one.
    """

    def __init__(
        self,
        preset: str | None = None,
        *,
        config: TextClassifierConfig | Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> None:
        if config is not None and (preset is not None or overrides):
            raise LstmkitError("pass either config=... or a preset and overrides, not both")
        if isinstance(config, Mapping):
            config = TextClassifierConfig(**config)
        if config is not None and not isinstance(config, TextClassifierConfig):
            raise LstmkitError(
                f"config must be a TextClassifierConfig or a dict of its settings, got "
                f"{type(config).__name__}"
            )
        self.config = config if config is not None else make_config(preset, **overrides)
        #: settings the caller gave by name (a pretrained encoder may not contradict them)
        self._explicit = _explicit_settings(config, overrides)
        #: the encoder `pretrain` learnt (or None); `fit` starts from it
        self.pretrained: PretrainedEncoder | None = None
        self.tokenizer: TextTokenizer | None = None
        self.net: TextClassifierNet | None = None
        self.classes: list[Label] = []
        self.history: list[dict[str, float]] = []
        #: facts about the last fit (or the loaded model's), see `FitInfo`
        self.fit_info = FitInfo()
        #: the validation texts and labels of the last `fit` (not saved)
        self.validation: LabelledTexts | None = None
        #: the bag-of-words baseline fitted beside the network (None: not fitted / an
        #: older model folder), scored by `evaluate` next to the LSTM
        self.baseline: BagOfWordsBaseline | None = None

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (scikit-learn's convention): every setting by its
        flat name (``hidden_size``, ``vocab_size``, ``tokenizer`` for the kind, ``lr``,
        ``max_epochs``, ...). ``deep`` is accepted for scikit-learn."""
        return self.config.to_flat()

    def set_params(self, **params: Any) -> TextClassifier:
        """Change settings by their flat names (checked like the constructor); returns
        self. A fitted model keeps its weights until the next `fit`."""
        self.config = self.config.replace(**params)
        self._explicit |= _explicit_settings(None, params)
        return self

    def clone(self) -> TextClassifier:
        """An unfitted classifier with the same settings (scikit-learn's ``clone``)."""
        copy = type(self)(config=self.config.model_copy(deep=True))
        copy._explicit = set(self._explicit)
        return copy

    @property
    def run_options(self) -> dict[str, Any]:
        """Deprecated: the run's folders are settings now (``config.train``)."""
        warn_deprecated("TextClassifier.run_options is deprecated; read config.train")
        return {name: getattr(self.config.train, name) for name in RUN_FOLDERS}

    @property
    def fit_result(self) -> FitResult | None:
        """The outcome of the last `fit` (or the loaded model's): history, best epoch,
        epochs run, seconds; None before."""
        if not self.history:
            return None
        info = self.fit_info
        return FitResult(
            history=self.history, best_epoch=info.best_epoch, best_val_loss=info.best_val_loss,
            epochs_run=info.epochs_run, fit_seconds=info.fit_seconds,
            world_size=info.world_size, resumed_from_epoch=info.resumed_from_epoch,
        )  # fmt: skip

    # ------------------------------------------------------------------ helpers
    @property
    def is_fitted(self) -> bool:
        """Whether `fit` (or `load`) has run: the tokenizer and network exist."""
        return self.net is not None and self.tokenizer is not None

    def require_fitted(self) -> tuple[TextTokenizer, TextClassifierNet]:
        """The fitted (tokenizer, network); one `LstmkitError` line before `fit` / `load`."""
        if self.net is None or self.tokenizer is None:
            raise LstmkitError("the classifier is not trained yet; call fit() or load() first")
        return self.tokenizer, self.net

    def _encode_labels(self, labels: Sequence[Label], source: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({str(label) for label in labels if label not in index})
        if unknown:
            raise LstmkitError(
                f"{source}: labels {unknown[:5]} were not seen in training; the model knows "
                f"{self.classes}"
            )
        return [index[label] for label in labels]

    def _class_weights(self, y: list[int]) -> Tensor | None:
        """The loss weight of each class (classes,) float64 from ``config.class_weight`` and
        the training part's class ids ``y``; None when unweighted. A smallest-to-largest
        ratio float32 cannot hold (the loss gets them scaled to a largest of 1) is refused."""
        setting = self.config.class_weight
        if setting is None:
            return None
        k = len(self.classes)
        if setting == "balanced":
            counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=k)
            return torch.tensor(len(y) / (k * np.maximum(counts, 1)), dtype=torch.float64)
        index = {str(c): i for i, c in enumerate(self.classes)}
        unknown = [label for label in setting if str(label) not in index]
        if unknown:
            raise LstmkitError(
                f"class_weight names labels {unknown} that are not in the training labels "
                f"{self.classes}; weigh only those labels"
            )
        weights = torch.ones(k, dtype=torch.float64)
        for label, weight in setting.items():
            weights[index[str(label)]] = weight
        low, high = float(weights.min()), float(weights.max())
        if low / high < WEIGHT_RANGE[0]:
            raise LstmkitError(
                f"class_weight: the smallest weight ({low:.3g}, labels left out weigh 1) is "
                f"{high / low:.2g} times smaller than the largest ({high:.3g}), a ratio float32 "
                "cannot hold; only the ratios matter, bring the weights closer"
            )
        return weights

    def _load_vectors(self, path: str | Path) -> float:
        """Copy the vectors of ``path``'s words into the embedding rows of the tokens found;
        return the share of the vocabulary (without [PAD] and [UNK]) found."""
        tokenizer, net = self.require_fitted()
        vocab = tokenizer.tokenizer.get_vocab()
        for special in (PAD, UNK):
            vocab.pop(special, None)
        normalizer = tokenizer.tokenizer.normalizer
        normalise = normalizer.normalize_str if normalizer is not None else str
        found = match_word_vectors(path, vocab, normalise, self.config.embedding_dim)
        with torch.no_grad():
            weight = net.embedding.weight
            weight[torch.as_tensor(found.ids)] = torch.as_tensor(found.vectors, dtype=weight.dtype)
        return len(found.ids) / max(len(vocab), 1)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[Label],
        *,
        val_texts: Sequence[str] | None = None,
        val_labels: Sequence[Label] | None = None,
        progress: bool | None = None,
        accelerator: str | None = None,
        devices: int | str | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        pretrained: str | Path | PretrainedEncoder | None = None,
        baseline: bool | str = True,
        vectors: str | Path | None = None,
    ) -> TextClassifier:
        """Train on ``texts`` (n strings) with ``labels`` (n class names or integers).

        Without ``val_texts``, a stratified ``config.val_fraction`` of the data is held out
        for validation (early stopping and best-epoch selection use its loss).
        The tokenizer is learnt from the training part only. ``on_epoch`` is called after
        each epoch with that epoch's metrics (epoch, train_loss, val_acc, ..., seconds).

        ``pretrained``: a folder written by `save_pretrained` (``lstmkit classify
        pretrain``) or a `PretrainedEncoder`; default: the encoder of an earlier
        `pretrain` call, if any. Fine-tuning then starts from its tokenizer, word vectors
        and recurrent weights, and takes its encoder settings (embedding_dim, hidden_size,
        num_layers, rnn, bidirectional, layer_norm, init, num_heads, tokenizer); a setting
        given explicitly that differs from the encoder's is an error.

        With ``baseline`` (the default) a bag-of-words baseline (`BagOfWordsBaseline`:
        TF-IDF 1-2-grams + logistic regression; ``baseline="nbsvm"``: NBSVM on 1-2-grams)
        is fitted on the same training part, saved with the model and scored by
        `evaluate` beside the network; its mixture weight with the network is chosen on
        the validation split (see `predict_proba`). ``vectors`` names a
        word-vector file (word2vec/GloVe text format, optionally gzipped, with or without
        the "count dim" header): the embedding rows of the vocabulary's tokens found there
        (after the tokenizer's normalisation, e.g. lower-casing) start from those vectors,
        the others keep their random initialisation; ``train_info["vectors_coverage"]`` is
        the share of the vocabulary (without [PAD] and [UNK]) found.

        ``progress`` shows the training progress (default: the ``progress`` setting).
        ``accelerator`` and ``devices`` here are deprecated: they are settings of the
        constructor, as the `Forecaster`'s.
        """
        run = _run_settings(progress, accelerator, devices)
        train_cfg = self.config.train_config(**run)  # checks them before any work
        require_precision_supported(train_cfg.precision, train_cfg.accelerator)
        encoder = self._encoder_for_fit(pretrained, vectors)
        train_part, val_part = self._parts(texts, labels, val_texts, val_labels)
        cfg = self.config
        weights = self._class_weights(train_part[1])  # refuses unknown labels before any work
        if vectors is not None:  # a missing, empty or mismatched file fails before any work
            vector_file_dim(vectors, cfg.embedding_dim)
        # an unknown kind is refused here, before any work
        baseline_settings = BaselineSettings(
            kind=baseline if isinstance(baseline, str) else "tfidf"
        )

        torch.manual_seed(cfg.seed)
        vocabulary = None if encoder is None else encoder.tokenizer.tokenizer
        data = TextData(cfg, self.classes, train_part, val_part, vocabulary=vocabulary)
        data.setup("fit")
        self.tokenizer = data.tokenizer
        coverage = self._build_net(encoder, vectors)
        # the loss is a weighted mean: weights scaled to a largest of 1 give the same loss,
        # and their sums over a batch cannot overflow float32
        scaled = None if weights is None else weights / weights.max()
        module = TextClassifierModule(self.net, cfg, on_epoch, class_weights=scaled)
        result = train(
            module, data.train_dataloader(), data.val_dataloader(), train_cfg,
            fingerprint=lambda: self._fingerprint(data, encoder, vectors),  # to checkpoint only
        )  # fmt: skip
        net = self.require_fitted()[1]
        net.cpu().eval()
        require_finite_weights(
            net.state_dict(),
            "training diverged: the weights became NaN or infinite",
            "lower lr or set gradient_clip_val (e.g. 1.0) and train again",
        )
        self.history = result.history
        baseline_seconds = self._fit_baseline(baseline, baseline_settings, train_part, val_part)
        va_texts, va_y = val_part
        self.validation = LabelledTexts(va_texts, [self.classes[i] for i in va_y], "validation")
        self.fit_info = _fit_info(result, data, weights, vectors, coverage, baseline_seconds)
        return self

    def _encoder_for_fit(
        self,
        pretrained: str | Path | PretrainedEncoder | None,
        vectors: str | Path | None,
    ) -> PretrainedEncoder | None:
        """The encoder a fit starts from (``pretrained``, else that of an earlier
        `pretrain` unless ``vectors`` are given), its settings adopted; None for none."""
        if pretrained is not None and vectors is not None:
            raise LstmkitError(
                "pass either pretrained= (an encoder with its own word vectors) or vectors=, "
                "not both"
            )
        if pretrained is None and vectors is None:
            pretrained = self.pretrained  # pretrain()'s, checked against today's settings
        if pretrained is None:
            return None
        self.use_pretrained(pretrained)
        return self.pretrained

    def _parts(
        self,
        texts: Sequence[str],
        labels: Sequence[Label],
        val_texts: Sequence[str] | None,
        val_labels: Sequence[Label] | None,
    ) -> tuple[Part, Part]:
        """The validated training and validation parts (texts, class ids); sets
        ``classes`` from the training labels. Without ``val_texts`` a stratified
        ``val_fraction`` of the data validates (`stratified_split`)."""
        data = validate_labelled(
            _as_list(texts, "texts"), _as_list(labels, "labels"), "training data"
        )
        self.classes = data.classes()
        y = self._encode_labels(data.labels, "training data")
        if val_texts is not None:
            if val_labels is None:
                raise LstmkitError("val_texts given without val_labels; pass both or neither")
            val = validate_labelled(
                _as_list(val_texts, "val_texts"),
                _as_list(val_labels, "val_labels"),
                "validation data",
                min_classes=1,
            )
            train_part = (data.texts, y)
            val_part = (val.texts, self._encode_labels(val.labels, "validation data"))
        elif val_labels is not None:
            raise LstmkitError("val_labels given without val_texts; pass both or neither")
        else:
            cfg = self.config
            tr_idx, va_idx = stratified_split(y, len(self.classes), cfg.val_fraction, cfg.seed)
            train_part = ([data.texts[i] for i in tr_idx], [y[i] for i in tr_idx])
            val_part = ([data.texts[i] for i in va_idx], [y[i] for i in va_idx])
        if len(set(train_part[1])) < 2:
            raise LstmkitError("the training part holds a single class; give more rows per class")
        return train_part, val_part

    def _build_net(
        self, encoder: PretrainedEncoder | None, vectors: str | Path | None
    ) -> float | None:
        """Build the network for the fitted tokenizer, starting from the pretrained
        ``encoder``'s weights or the word ``vectors`` (their coverage is returned)."""
        tokenizer = self.tokenizer
        assert tokenizer is not None
        self.net = build_net(tokenizer.vocab_size, len(self.classes), self.config)
        if encoder is not None:
            missing = self.net.load_state_dict(encoder.encoder_state(), strict=False)
            assert not missing.unexpected_keys, missing.unexpected_keys
        return None if vectors is None else self._load_vectors(vectors)

    def _fingerprint(
        self, data: TextData, encoder: PretrainedEncoder | None, vectors: str | Path | None
    ) -> str:
        """What the run's checkpoints must match: the data and settings, the pretrained
        encoder and the starting word vectors."""
        digest = data.fingerprint()
        if encoder is not None:
            digest += encoder.fingerprint()
        if vectors is not None:  # a checkpoint of a run from other word vectors is refused
            start_weights = self.require_fitted()[1].embedding.weight.detach().numpy().tobytes()
            digest = hashlib.sha256(digest.encode() + start_weights).hexdigest()
        return digest

    def _fit_baseline(
        self, baseline: bool | str, settings: BaselineSettings, train: Part, val: Part
    ) -> float | None:
        """Fit the bag-of-words baseline on the training part (once, not per DDP process)
        and its mixture weight with the network on the validation part; its seconds."""
        self.baseline = None
        if not baseline or os.environ.get("LOCAL_RANK", "0") != "0":
            return None
        try:
            self.baseline = BagOfWordsBaseline(settings).fit(train[0], train[1], len(self.classes))
        except LstmkitError:  # no words to count (e.g. one-letter tokens): shown as n/a
            self.baseline = None
            return None
        if val[0]:  # the mixture's weight, on validation
            self.baseline.network_weight = mixture_weight(
                self.predict_proba(val[0]), self.baseline.predict_proba(val[0]), val[1]
            )
        return self.baseline.fit_seconds

    def pretrain(
        self,
        corpus: str | Path | Sequence[str] | Sequence[Path] | TextCorpus,
        *,
        text_column: str = "text",
        progress: bool = True,
        accelerator: str | None = None,
        devices: int | str | None = None,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        **settings: Any,
    ) -> TextClassifier:
        """Learn the tokenizer, word vectors and encoder from unlabelled texts.

        ``corpus``: a list of texts, a path or list of paths (text files with one text a
        line, CSV/TSV/JSONL/Parquet tables with ``text_column``, the IMDB archive or
        folder, folders of .txt files), or a `TextCorpus`; files are streamed, never held
        in memory. ``settings``: any `PretrainSettings` field (epochs, max_minutes,
        batch_size, lr, ...). The encoder's shape comes from this classifier's settings.
        The result is kept in ``self.pretrained``: the next `fit` starts from it, and
        `save_pretrained` writes it. See `lstmkit.tasks.language_model`.
        """
        if not isinstance(corpus, TextCorpus):
            corpus = TextCorpus(corpus, text_column)
        run = PretrainSettings(**{"seed": self.config.seed, **settings})
        train = self.config.train
        self.pretrained = pretrain(
            corpus,
            self.config,
            run,
            run_options={name: getattr(train, name) for name in RUN_FOLDERS},
            progress=progress,
            accelerator=train.accelerator if accelerator is None else accelerator,
            devices=train.devices if devices is None else devices,
            on_epoch=on_epoch,
        )
        return self

    def use_pretrained(self, encoder: str | Path | PretrainedEncoder) -> TextClassifier:
        """Start the next `fit` from ``encoder`` (a folder of `save_pretrained` or a
        `PretrainedEncoder`), taking its encoder settings now: a setting given explicitly
        that contradicts it is an `LstmkitError`, before any data is read."""
        if not isinstance(encoder, PretrainedEncoder):
            encoder = PretrainedEncoder.load(encoder, TextClassifierConfig)
        self.config = encoder.adopt(self.config, self._explicit)
        self.pretrained = encoder
        return self

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the encoder of `pretrain` as a model folder (kind ``"text_encoder"``) with
        its perplexity curve (``perplexity.png``), atomically."""
        if self.pretrained is None:
            raise LstmkitError("nothing pretrained yet; call pretrain() first")
        from lstmkit.plots.text import perplexity_png

        extras = {}
        if self.pretrained.history:
            extras["perplexity.png"] = perplexity_png(
                self.pretrained.history, self.pretrained.steps
            )
        return self.pretrained.save(path, extras)

    @property
    def train_info(self) -> dict[str, Any]:
        """`fit_info` as a plain dict (train_texts, val_texts, fit_seconds, ...)."""
        return asdict(self.fit_info)

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def _logits(self, texts: Sequence[str], batch_size: int | None = None) -> Tensor:
        tokenizer, net = self.require_fitted()
        net.eval()
        size = check_batch_size(batch_size) or self.config.batch_size * 2
        ids = tokenizer.encode(list(texts))
        loader = make_loader(ids, None, size, shuffle=False)
        order = np.argsort(-np.array([len(s) for s in ids]), kind="stable")
        outputs = [net(b["ids"], b["lengths"]) for b in loader]
        logits = torch.cat(outputs) if outputs else torch.empty(0, net.head.out_features)
        result = torch.empty_like(logits)
        result[torch.as_tensor(order)] = logits
        return result

    def predict_proba(
        self, texts: Sequence[str], batch_size: int | None = None, *, combined: bool = False
    ) -> np.ndarray:
        """Class probabilities (n, classes), columns in the order of ``self.classes``.

        ``combined``: the mixture ``w * network + (1 - w) * baseline`` with the bag-of-words
        baseline, w chosen on the validation split by `fit` (``baseline.network_weight``);
        an error for a model without one.
        """
        data = validate_texts(_as_list(texts, "texts"), "texts")
        _, net = self.require_fitted()
        baseline = self.require_mixture() if combined else None
        with torch.inference_mode():
            proba = net.probabilities(self._logits(data.texts, batch_size)).numpy()
        _require_finite_output(proba, "probabilities")
        if baseline is not None:
            return baseline.mix(proba, baseline.predict_proba(data.texts))
        return proba

    def require_mixture(self) -> BagOfWordsBaseline:
        """The baseline the network is mixed with for ``combined=True``; an `LstmkitError`
        line for a model without a mixture (trained without baseline or validation split)."""
        if self.baseline is None or self.baseline.network_weight is None:
            raise LstmkitError(NO_MIXTURE)
        return self.baseline

    def predict(
        self, texts: Sequence[str], batch_size: int | None = None, *, combined: bool = False
    ) -> list[Label]:
        """Predicted labels (n), in the label type given to fit (strings or integers);
        ``combined`` as in `predict_proba`."""
        proba = self.predict_proba(texts, batch_size, combined=combined)
        return [self.classes[i] for i in proba.argmax(axis=1)]

    def predict_table(
        self, texts: Sequence[str], batch_size: int | None = None, *, combined: bool = False
    ) -> pd.DataFrame:
        """One row per text: columns ``text``, ``label`` and ``p_<class>`` per class;
        ``combined`` as in `predict_proba`."""
        proba = self.predict_proba(texts, batch_size, combined=combined)
        table = pd.DataFrame({"text": list(texts)})
        table["label"] = [self.classes[i] for i in proba.argmax(axis=1)]
        for j, c in enumerate(self.classes):
            table[f"p_{c}"] = proba[:, j]
        return table

    def evaluate(
        self, texts: Sequence[str], labels: Sequence[Label], batch_size: int | None = None
    ) -> Evaluation:
        """Accuracy, macro F1, mean loss and confusion matrix on labelled texts.

        The result's ``baseline`` holds the bag-of-words baseline's scores on the same texts
        (None when the model has no baseline, e.g. a folder saved by an older version), and
        ``combined`` those of the network's mixture with it (see `predict_proba`; None
        without one).
        """
        _, net = self.require_fitted()
        data = validate_labelled(
            _as_list(texts, "texts"), _as_list(labels, "labels"), "evaluation data", min_classes=1
        )
        y = torch.tensor(self._encode_labels(data.labels, "evaluation data"))
        start = time.perf_counter()
        with torch.inference_mode():
            logits = self._logits(data.texts, batch_size)
            loss = float(net.loss(logits, y))
            pred = net.probabilities(logits).argmax(-1)
        _require_finite_output(logits.numpy(), "logits")
        cm = confusion_matrix(y, pred, len(self.classes))
        seconds = time.perf_counter() - start  # the network's own time, without the baseline
        baseline = combined = None
        if self.baseline is not None:
            begin = time.perf_counter()
            base_proba = self.baseline.predict_proba(data.texts)
            baseline = score_probabilities(base_proba, y.numpy(), list(self.classes), begin)
            if self.baseline.network_weight is not None:
                mixed = self.baseline.mix(net.probabilities(logits).numpy(), base_proba)
                combined = score_probabilities(mixed, y.numpy(), list(self.classes), begin)
                combined.seconds += seconds
        return Evaluation(
            accuracy=float((pred == y).float().mean()),
            macro_f1=macro_f1(y, pred, len(self.classes)),
            loss=loss,
            confusion=cm,
            classes=list(self.classes),
            n=len(y),
            seconds=seconds,
            baseline=baseline,
            combined=combined,
        )

    @torch.inference_mode()
    def explain(self, text: str, layer: int = -1, direction: int = 0) -> GateTrace:
        """Gate activations of one recurrent layer/direction and attention weights on ``text``."""
        tokenizer, net = self.require_fitted()
        validate_texts([text], "text")
        cfg = self.config
        if not -cfg.num_layers <= layer < cfg.num_layers:
            raise LstmkitError(f"layer must be in [0, {cfg.num_layers - 1}], got {layer}")
        n_dir = 2 if cfg.bidirectional else 1
        if direction not in range(n_dir):
            raise LstmkitError(f"direction must be in [0, {n_dir - 1}], got {direction}")
        net.eval()
        ids = tokenizer.encode([text])[0]
        logits, details = net(torch.tensor([ids]), torch.tensor([len(ids)]), return_details=True)
        gate = details["gates"][layer][direction]
        gates = {name: value[0].numpy() for name, value in gate._asdict().items()}
        attention = details.get("attention")
        proba = net.probabilities(logits)[0].numpy()
        return GateTrace(
            tokens=[tokenizer.tokenizer.id_to_token(i) or "[UNK]" for i in ids],
            gates=gates,
            attention=None if attention is None else attention[0].numpy(),
            probabilities=proba,
            predicted=self.classes[int(proba.argmax())],
            classes=list(self.classes),
            layer=layer % cfg.num_layers,
            direction=direction,
            rnn=cfg.rnn,
        )

    # ------------------------------------------------------------------ persistence
    def save(
        self,
        path: str | Path,
        extras: dict[str, str | bytes] | None = None,
        folders: dict[str, str | Path] | None = None,
    ) -> Path:
        """Write the model directory (config.json, model.safetensors, tokenizer.json,
        training.json, ``baseline/`` when a baseline was fitted, any ``extras`` files and
        copies of ``folders``) atomically."""
        from lstmkit.io import save_model_dir

        tokenizer, net = self.require_fitted()
        files = {
            "tokenizer.json": tokenizer.to_json(),
            "training.json": TrainingRecord(self.history, self.fit_info).to_json(),
        }
        files.update(extras or {})
        # the run's checkpoint and log folders are not part of the saved settings
        settings = self.config.replace(train=self.config.train.for_saving())
        state = ModelState(settings, list(self.classes), tokenizer.vocab_size)
        with tempfile.TemporaryDirectory(prefix="lstmkit-baseline-") as tmp:
            folders = dict(folders or {})
            if self.baseline is not None:
                folders["baseline"] = self.baseline.save(Path(tmp) / "baseline")
            return save_model_dir(
                path,
                kind=KIND,
                config=state.to_dict(),
                state_dict=net.state_dict(),
                extras=files,
                folders=folders,
            )

    def export_onnx(self, path: str | Path) -> Path:
        """Write the folder ``path`` with ``model.onnx``, ``export.json`` (labels, truncation),
        ``tokenizer.json`` and, with a mixture, the bag-of-words baseline, checked against
        this model within 1e-5 first; load it with `lstmkit.runtime.load`, which predicts
        like `predict` (``combined=`` included) without PyTorch. Raises `LstmkitError` (and
        writes nothing) for options ONNX cannot run or a failed check."""
        from lstmkit.tasks.text_classification.export import export_text_classifier

        return export_text_classifier(self, path)

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        """Load a model directory written by `save`, checking its parts against each other.

        The config must name at least two distinct classes; the tokenizer's vocabulary,
        the config's ``vocab_size`` and the embedding's rows must agree; every tensor in
        ``model.safetensors`` must have the shape the config implies (classes, hidden
        size, layers, pooling). Anything else is refused with one `LstmkitError` line.
        """
        from lstmkit.io import load_model_dir

        saved = load_model_dir(path, KIND)
        state = ModelState.from_dict(saved.config, str(Path(path) / "config.json"))
        cfg, classes, vocab_size = state.model, state.classes, state.vocab_size
        tokenizer = _read_tokenizer(saved, cfg, vocab_size, path)
        check_weight_shapes(saved.state_dict, vocab_size, classes, cfg, path)
        require_finite_weights(
            saved.state_dict,
            f"{Path(path) / 'model.safetensors'} holds NaN or infinite weights",
            "the file is damaged; save the model again",
        )
        clf = cls(config=cfg)
        clf.classes = classes
        clf.tokenizer = tokenizer
        clf.net = TextClassifierNet(vocab_size, len(classes), cfg)
        clf.net.load_state_dict(saved.state_dict)
        clf.net.eval()
        record_path = Path(path) / "training.json"
        if record_path.exists():  # the history is optional: a model predicts without it
            record = TrainingRecord.from_json(record_path.read_bytes(), str(record_path))
            clf.history, clf.fit_info = record.history, record.info
        if (Path(path) / "baseline").is_dir():  # folders of older versions have none
            clf.baseline = BagOfWordsBaseline.load(Path(path) / "baseline", len(classes))
        return clf


def _read_tokenizer(
    saved: Any, cfg: TextClassifierConfig, vocab_size: int, path: str | Path
) -> TextTokenizer:
    """The saved tokenizer; its vocabulary must match ``vocab_size`` and the special ids."""
    where = Path(path) / "tokenizer.json"
    try:
        text = saved.read_text("tokenizer.json")
    except UnicodeDecodeError:
        raise LstmkitError(f"{where}: not UTF-8 text; the file is damaged, save again") from None
    try:
        tokenizer = TextTokenizer.from_json(text, cfg.tokenizer)
    except LstmkitError as err:
        raise LstmkitError(f"{where}: {err}; save the model again") from None
    vocab = tokenizer.tokenizer
    if tokenizer.vocab_size != vocab_size:
        raise LstmkitError(
            f"{where}: the tokenizer has {tokenizer.vocab_size:,} tokens but config.json says "
            f"vocab_size {vocab_size:,}; the two files come from different models, save again"
        )
    if vocab.token_to_id(PAD) != PAD_ID or vocab.token_to_id(UNK) != UNK_ID:
        raise LstmkitError(
            f"{where}: the tokenizer lacks [PAD]=0 and [UNK]=1; it was not written by lstmkit, "
            f"save the model again"
        )
    return tokenizer


def _explicit_settings(config: Any, overrides: Mapping[str, Any]) -> set[str]:
    """Flat names of the settings a caller gave by name (a full ``config`` gives them
    all); a ``tokenizer`` given whole counts for each of its fields, a bare kind as
    ``kind``; an old name counts as its new one."""
    tokenizer_fields = set(TokenizerConfig.model_fields)
    if config is not None:
        return set(TextClassifierConfig.flat_fields()) | tokenizer_fields
    renamed = TextClassifierConfig.all_renamed()
    names = {renamed.get(name, name) for name in overrides}
    tok = overrides.get("tokenizer")
    if isinstance(tok, Mapping):
        names |= set(tok)
    elif isinstance(tok, TokenizerConfig):
        names |= tokenizer_fields
    elif isinstance(tok, str):
        names.add("kind")
    names.discard("tokenizer")
    return names


def _run_settings(
    progress: bool | None, accelerator: str | None, devices: int | str | None
) -> dict[str, Any]:
    """The run settings `TextClassifier.fit` was given (the deprecated ones warn)."""
    run: dict[str, Any] = {} if progress is None else {"progress": progress}
    for name, value in (("accelerator", accelerator), ("devices", devices)):
        if value is not None:
            warn_deprecated(f"fit({name}=...) is deprecated; pass TextClassifier({name}=...)")
            run[name] = value
    return run


#: the training settings that name a run's folders and checkpoints (not the model's)
RUN_FOLDERS = ("checkpoint_dir", "checkpoint_every_n_steps", "logger", "log_dir")


def _fit_info(
    result: FitResult,
    data: TextData,
    weights: Tensor | None,
    vectors: str | Path | None,
    coverage: float | None,
    baseline_seconds: float | None,
) -> FitInfo:
    """The `FitInfo` of a finished fit."""
    assert data.tokenizer is not None
    # epochs trained by this call (a resumed run's earlier epochs came from the checkpoint)
    resumed = result.resumed_from_epoch
    epochs_now = max(result.epochs_run - (0 if resumed is None else resumed + 1), 0)
    return FitInfo(
        train_texts=len(data.train[0]),
        val_texts=len(data.val[0]),
        vocab_size=data.tokenizer.vocab_size,
        train_tokens_per_epoch=data.train_tokens,
        tokenizer_seconds=data.tokenizer_seconds,
        fit_seconds=result.fit_seconds,
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        best_val_loss=result.best_val_loss,
        tokens_per_second=data.train_tokens * epochs_now / max(result.fit_seconds, 1e-9),
        world_size=result.world_size,
        resumed_from_epoch=result.resumed_from_epoch,
        baseline_seconds=baseline_seconds,
        class_weights=None if weights is None else weights.tolist(),
        vectors_file=None if vectors is None else str(vectors),
        vectors_coverage=coverage,
    )


def _require_finite_output(values: np.ndarray, what: str) -> None:
    """Never hand out NaN or infinite scores: they come only from broken weights."""
    if not np.isfinite(values).all():
        raise LstmkitError(
            f"the model produced non-finite {what}; its weights are damaged, train or load "
            f"the model again"
        )


class PretrainedTextEncoder:
    """The loader the registry names for a ``"text_encoder"`` folder: a language-model
    encoder pretrained for a `TextClassifier` (`PretrainedEncoder` read with this task's
    settings)."""

    @staticmethod
    def load(path: str | os.PathLike[str]) -> PretrainedEncoder:
        """The encoder saved in ``path`` (`PretrainedEncoder.load` with
        `TextClassifierConfig`)."""
        return PretrainedEncoder.load(path, TextClassifierConfig)
