"""The bag-of-words baseline printed beside every text classifier's result.

`BagOfWordsBaseline` is TF-IDF on word uni- and bigrams (sublinear term frequency,
smoothed idf, rows L2-normalised) followed by a logistic regression (C=10), trained with
scikit-learn on the same training split as the LSTM. A fitted baseline is plain numbers
(the n-gram vocabulary, the idf weights, the coefficients and intercepts), so it is saved
without pickle: ``baseline.json`` (settings and vocabulary in column order) and
``baseline.safetensors`` (``idf`` (features,), ``coef`` (outputs, features),
``intercept`` (outputs,), float64) in a ``baseline/`` folder of the model directory.
Scoring after loading needs only the count vectoriser's tokenisation and NumPy/SciPy
math, and gives the same probabilities as before saving.

The baseline also serves as the second member of a two-model mixture: `mixture_weight`
picks, on the validation split, the weight w of the network in
``w * p_network + (1 - w) * p_baseline`` that minimises the cross-entropy; it is saved
as ``network_weight`` in ``baseline.json`` and used by ``combined=True`` predictions.

No torch here (the scores are imported where they are computed), so that the ONNX
runtime (`lstmkit.tasks.text_classification.runtime`) rebuilds the mixture from an
export's copy of these two files and predicts with it as `TextClassifier` does.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from lstmkit.errors import LstmkitError
from lstmkit.io.atomic import follow_umask
from lstmkit.settings import Settings

if TYPE_CHECKING:
    from lstmkit.tasks.text_classification.metrics import Evaluation

#: file names inside the model directory's ``baseline/`` folder
SETTINGS_FILE, WEIGHTS_FILE = "baseline.json", "baseline.safetensors"
#: what the saved files describe (checked on load)
FORMAT = "lstmkit-bag-of-words-1"
#: the kinds of baseline (`BaselineSettings.kind`)
KINDS = ("tfidf", "nbsvm")
#: why ``combined=True`` is refused for a model without a mixture (estimator and runtime)
NO_MIXTURE = (
    "this model has no mixture with the bag-of-words baseline (trained with baseline=False "
    "or without a validation split); predict without combined"
)


class BaselineSettings(Settings):
    """How the baseline reads and weighs words (a `lstmkit.settings.Settings` model).

    kind: "tfidf" (TF-IDF rows, sublinear tf, L2-normalised) or "nbsvm" (Wang & Manning
    2012 with a logistic regression: 0/1 n-gram presence scaled by the naive-Bayes
    log-count ratio of each class against the rest, one-vs-rest for more classes).
    ``C`` left out is 10 for "tfidf" (rows of unit norm) and 1 for "nbsvm".
    """

    what: ClassVar[str] = "baseline"

    ngram_max: int = Field(2, ge=1, description="Longest word n-gram (1-2-grams with 2).")
    min_df: int = Field(
        2, ge=1, description="An n-gram must occur in at least this many training texts."
    )
    max_features: int = Field(
        200_000, ge=1, description="Keep the most frequent n-grams (caps the saved vocabulary)."
    )
    C: float | None = Field(
        None,
        gt=0,
        description="Inverse regularisation strength of the logistic regression "
        "(None: 10 for tfidf, 1 for nbsvm).",
    )
    lowercase: bool = Field(
        True, description="Lower-case before counting; <br /> line breaks become spaces."
    )
    kind: Literal["tfidf", "nbsvm"] = Field("tfidf", description="The kind of baseline.")

    @model_validator(mode="after")
    def _default_c(self) -> BaselineSettings:
        if self.C is None:  # C=10 for TF-IDF rows of unit norm, 1 for NBSVM's scaled 0/1 rows
            self.__dict__["C"] = 10.0 if self.kind == "tfidf" else 1.0
        return self


def _strip_breaks(text: str) -> str:
    return text.replace("<br />", " ").replace("<br/>", " ").replace("<br>", " ")


class BagOfWordsBaseline:
    """TF-IDF word 1-2-grams (sublinear tf) + logistic regression, scored beside the LSTM.

    ``fit(texts, y, num_classes)`` with ``y`` (n,) class ids; ``predict_proba(texts)`` ->
    (n, num_classes) probabilities; ``evaluate`` -> `Evaluation`. ``save(folder)`` /
    ``load(folder)`` write and read JSON + safetensors (no pickle).
    """

    def __init__(self, settings: BaselineSettings | None = None) -> None:
        self.settings = settings or BaselineSettings()
        self.vocabulary: list[str] = []
        self.idf = np.zeros(0)
        self.coef = np.zeros((0, 0))
        self.intercept = np.zeros(0)
        self.num_classes = 0
        self.fit_seconds = 0.0
        #: weight of the network in its mixture with this baseline (`mixture_weight`),
        #: chosen on the validation split; None: no mixture (no validation split)
        self.network_weight: float | None = None
        self._vectorizer = None

    # ------------------------------------------------------------------ features
    def _counter(self, vocabulary: dict[str, int] | None = None):
        from sklearn.feature_extraction.text import CountVectorizer

        s = self.settings
        return CountVectorizer(
            ngram_range=(1, s.ngram_max),
            lowercase=s.lowercase,
            preprocessor=None,
            min_df=s.min_df if vocabulary is None else 1,
            max_features=s.max_features if vocabulary is None else None,
            vocabulary=vocabulary,
            dtype=np.float64,
        )

    def _features(self, texts: Sequence[str]):
        """Feature rows (n, features), sparse CSR float64: TF-IDF rows of unit L2 norm, or
        for "nbsvm" 0/1 presence (the log-count ratios are folded into the coefficients)."""
        from sklearn.preprocessing import normalize

        if self._vectorizer is None:
            self._vectorizer = self._counter({t: i for i, t in enumerate(self.vocabulary)})
        counts = self._vectorizer.transform([_strip_breaks(t) for t in texts]).tocsr()
        if self.settings.kind == "nbsvm":
            counts.data[:] = 1.0
            return counts
        counts.data = 1.0 + np.log(counts.data)  # sublinear tf
        counts = counts.multiply(self.idf[None, :]).tocsr()
        return normalize(counts, norm="l2", copy=False)

    # ------------------------------------------------------------------ training
    def fit(self, texts: Sequence[str], y: Sequence[int], num_classes: int) -> BagOfWordsBaseline:
        """Learn the vocabulary, idf and the logistic regression from ``texts`` and ``y``
        (class ids in [0, num_classes), at least two distinct)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        start = time.perf_counter()
        y_arr = np.asarray(y, dtype=np.int64)
        counter = self._counter()
        cleaned = [_strip_breaks(t) for t in texts]
        try:
            counts = counter.fit_transform(cleaned)
        except ValueError:  # every n-gram below min_df: fall back to all n-grams
            counter.set_params(min_df=1)
            try:
                counts = counter.fit_transform(cleaned)
            except ValueError:
                raise LstmkitError(
                    "the texts hold no words of two or more letters; the bag-of-words "
                    "baseline has nothing to count"
                ) from None
        vocab = counter.vocabulary_
        self.vocabulary = [""] * len(vocab)
        for term, col in vocab.items():
            self.vocabulary[col] = term
        n = counts.shape[0]
        df = np.bincount(counts.tocsr().indices, minlength=len(vocab))
        # the same smoothed idf as scikit-learn's TfidfTransformer: ln((1+n)/(1+df)) + 1
        self.idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        self._vectorizer = self._counter(vocab)
        features = self._features(texts)
        self.num_classes = num_classes
        if self.settings.kind == "nbsvm":
            self._fit_nbsvm(features, y_arr, num_classes)
            self.fit_seconds = time.perf_counter() - start
            return self
        model = LogisticRegression(C=self.settings.C, max_iter=2000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(features, y_arr)
        # columns of coef follow model.classes_, the class ids seen in training
        seen = model.classes_.astype(np.int64)
        if len(seen) == 2 and num_classes == 2:
            self.coef = model.coef_.astype(np.float64)
            self.intercept = model.intercept_.astype(np.float64)
        else:  # one row per class; classes absent from training never win
            self.coef = np.zeros((num_classes, len(vocab)))
            self.intercept = np.full(num_classes, -1e9)
            if len(seen) == 2:  # binary model inside a larger label set
                self.coef[seen[1]] = model.coef_[0]
                self.intercept[seen] = [0.0, model.intercept_[0]]
                self.coef[seen[0]] = 0.0
            else:
                self.coef[seen] = model.coef_
                self.intercept[seen] = model.intercept_
        self.fit_seconds = time.perf_counter() - start
        return self

    def _fit_nbsvm(self, present, y: np.ndarray, num_classes: int) -> None:
        """NBSVM with a logistic regression (Wang & Manning 2012): per class c, the ratio
        r_c = log((1 + n-gram presence in class c) / |.|_1) - log((1 + in the rest) / |.|_1)
        scales the 0/1 rows, a binary logistic regression is fitted on them, and r_c is
        folded into its coefficients (x * r_c) . w_c = x . (r_c * w_c). Two classes: one
        model for the second class; more: one per class, scored one-vs-rest."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        targets = [1] if num_classes == 2 else range(num_classes)
        self.idf = np.ones(present.shape[1])  # no idf: kept so the saved layout is shared
        self.coef = np.zeros((len(targets), present.shape[1]))
        self.intercept = np.full(len(targets), -1e9)  # a class absent from training never wins
        for row, c in enumerate(targets):
            mine = y == c
            if not mine.any() or mine.all():
                continue
            p = 1.0 + np.asarray(present[mine].sum(axis=0)).ravel()
            q = 1.0 + np.asarray(present[~mine].sum(axis=0)).ravel()
            r = np.log(p / p.sum()) - np.log(q / q.sum())
            model = LogisticRegression(C=self.settings.C, max_iter=3000)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(present.multiply(r[None, :]).tocsr(), mine.astype(np.int64))
            self.coef[row] = r * model.coef_[0]
            self.intercept[row] = model.intercept_[0]

    # ------------------------------------------------------------------ scoring
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities (n, num_classes) float64, columns in class-id order."""
        if not self.vocabulary:
            raise LstmkitError("the bag-of-words baseline is not fitted")
        scores = self._features(texts) @ self.coef.T + self.intercept[None, :]
        scores = np.asarray(scores)
        if self.coef.shape[0] == 1:  # two classes: one logit for the second
            p = 1.0 / (1.0 + np.exp(-np.clip(scores[:, 0], -700, 700)))
            return np.stack([1.0 - p, p], axis=1)
        if self.settings.kind == "nbsvm":  # one-vs-rest: each class's sigmoid, normalised
            p = 1.0 / (1.0 + np.exp(-np.clip(scores, -700, 700)))
            total = p.sum(axis=1, keepdims=True)
            return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])
        scores = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    def mix(self, network_proba: np.ndarray, baseline_proba: np.ndarray) -> np.ndarray:
        """``network_weight * network_proba + (1 - network_weight) * baseline_proba``: the
        mixture of the network's probabilities (n, classes) with this baseline's on the
        same texts (`predict_proba`). Only for a baseline with a ``network_weight``."""
        if self.network_weight is None:
            raise LstmkitError("this baseline has no mixture weight (no validation split)")
        w = self.network_weight
        return w * np.asarray(network_proba, dtype=np.float64) + (1 - w) * baseline_proba

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted class ids (n,) int64."""
        return self.predict_proba(texts).argmax(axis=1)

    def evaluate(self, texts: Sequence[str], y: Sequence[int], classes: list) -> Evaluation:
        """Accuracy, macro F1, mean cross-entropy and confusion matrix on ``texts``."""
        start = time.perf_counter()
        return score_probabilities(self.predict_proba(texts), y, classes, start)

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Write ``baseline.json`` and ``baseline.safetensors`` into ``folder`` (created)."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "settings": self.settings.to_dict(),
            "num_classes": self.num_classes,
            "fit_seconds": self.fit_seconds,
            "network_weight": self.network_weight,
            "vocabulary": self.vocabulary,
        }
        (folder / SETTINGS_FILE).write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
        save_file(
            {
                "idf": np.ascontiguousarray(self.idf, dtype=np.float64),
                "coef": np.ascontiguousarray(self.coef, dtype=np.float64),
                "intercept": np.ascontiguousarray(self.intercept, dtype=np.float64),
            },
            str(folder / WEIGHTS_FILE),
        )
        follow_umask(folder / WEIGHTS_FILE)  # safetensors writes 0600; the umask decides
        return folder

    @classmethod
    def load(cls, folder: str | Path, num_classes: int) -> BagOfWordsBaseline:
        """Read a baseline written by `save`; every part must agree with the others and
        with the model's ``num_classes``, else one `LstmkitError` line."""
        folder = Path(folder)
        fix = "delete the baseline folder to load the model without it, or train again"
        return cls.read(folder / SETTINGS_FILE, folder / WEIGHTS_FILE, num_classes, folder, fix)

    @classmethod
    def read(
        cls,
        settings_file: Path,
        weights_file: Path,
        num_classes: int,
        where: str | Path,
        fix: str,
    ) -> BagOfWordsBaseline:
        """Read the two files `save` writes (settings JSON and safetensors arrays, no
        pickle) from wherever they lie (a model's ``baseline/`` folder, an ONNX export);
        ``where`` and ``fix`` begin and end the `LstmkitError` line of a damaged part."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            meta = json.loads(Path(settings_file).read_text("utf-8"))
            tensors = load_file(str(weights_file))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, SafetensorError) as err:
            raise LstmkitError(
                f"{where}: the bag-of-words baseline cannot be read ({type(err).__name__}); {fix}"
            ) from None
        try:
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT}")
            # folders written before NBSVM existed hold TF-IDF baselines without a kind
            out = cls(BaselineSettings(**{"kind": "tfidf", **meta["settings"]}))
            out.vocabulary = [str(t) for t in meta["vocabulary"]]
            out.num_classes = int(meta["num_classes"])
            out.fit_seconds = float(meta.get("fit_seconds", 0.0))
            weight = meta.get("network_weight")  # absent in folders of older versions
            if weight is not None:
                if isinstance(weight, bool) or not isinstance(weight, int | float):
                    raise ValueError(f"network_weight {weight!r} is not a number")
                if not 0.0 <= weight <= 1.0:
                    raise ValueError(f"network_weight {weight!r} is not in [0, 1]")
                out.network_weight = float(weight)
            out.idf, out.coef = tensors["idf"], tensors["coef"]
            out.intercept = tensors["intercept"]
            features, outputs = len(out.vocabulary), 1 if num_classes == 2 else num_classes
            if out.num_classes != num_classes:
                raise ValueError(f"{out.num_classes} classes, the model has {num_classes}")
            if out.idf.shape != (features,) or out.coef.shape[1:] != (features,):
                raise ValueError(f"weights do not match the {features:,} n-grams")
            if out.coef.shape[0] not in (outputs, num_classes) or out.intercept.shape != (
                out.coef.shape[0],
            ):
                raise ValueError("coefficients do not match the classes")
            if not features or len(set(out.vocabulary)) != features:
                raise ValueError("the vocabulary is empty or repeats n-grams")
            finite = np.isfinite(out.idf).all() and np.isfinite(out.coef).all()
            if not finite or np.isnan(out.intercept).any():
                raise ValueError("weights are not finite")
        except (KeyError, TypeError, ValueError, LstmkitError) as err:
            raise LstmkitError(f"{where}: damaged bag-of-words baseline ({err}); {fix}") from None
        return out


def score_probabilities(
    proba: np.ndarray, y: Sequence[int], classes: list, start: float | None = None
) -> Evaluation:
    """`Evaluation` of class probabilities (n, classes) against class ids ``y`` (n,):
    accuracy, macro F1, mean cross-entropy, confusion matrix (seconds since ``start``)."""
    from lstmkit.tasks.text_classification.metrics import Evaluation, confusion_matrix, macro_f1

    y_arr = np.asarray(y, dtype=np.int64)
    pred = proba.argmax(axis=1)
    picked = np.clip(proba[np.arange(len(y_arr)), y_arr], 1e-15, 1.0)
    return Evaluation(
        accuracy=float((pred == y_arr).mean()) if len(y_arr) else float("nan"),
        macro_f1=macro_f1(y_arr, pred, len(classes)),
        loss=float(-np.log(picked).mean()) if len(y_arr) else float("nan"),
        confusion=confusion_matrix(y_arr, pred, len(classes)),
        classes=list(classes),
        n=len(y_arr),
        seconds=0.0 if start is None else time.perf_counter() - start,
    )


#: the weights `mixture_weight` tries: 0, 0.01, ..., 1
WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)


def mixture_weight(
    network_proba: np.ndarray, baseline_proba: np.ndarray, y: Sequence[int]
) -> float:
    """The weight w in `WEIGHT_GRID` of the network in ``w * network + (1 - w) * baseline``
    with the lowest mean cross-entropy on the (validation) class ids ``y``; of equal
    losses the largest w. Both probability arrays are (n, classes); n must be >= 1."""
    y_arr = np.asarray(y, dtype=np.int64)
    if not len(y_arr):
        raise LstmkitError("no validation texts to choose the mixture weight on")
    rows = np.arange(len(y_arr))
    p_net = np.asarray(network_proba, dtype=np.float64)[rows, y_arr]
    p_base = np.asarray(baseline_proba, dtype=np.float64)[rows, y_arr]
    mixed = WEIGHT_GRID[:, None] * p_net[None, :] + (1 - WEIGHT_GRID[:, None]) * p_base[None, :]
    losses = -np.log(np.clip(mixed, 1e-15, 1.0)).mean(axis=1)
    best = np.flatnonzero(losses <= losses.min() + 1e-12)
    return float(WEIGHT_GRID[best[-1]])
