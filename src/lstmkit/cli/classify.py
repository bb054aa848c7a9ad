"""``lstmkit classify train|evaluate|predict`` and ``lstmkit inspect``: text classification CLI.

Only parsing, argument checks and printing: the work is done by the API
(`lstmkit.data.text.load_text_data` and `texts_from_arguments` read the inputs,
`lstmkit.tasks.text_classification.report.fit_and_save` trains and writes the model
directory with ``training.png``, ``confusion.png`` and ``metrics.json`` inside in one
atomic swap, `TextClassifier.predict_table` predicts). Output paths are checked for
writability before any training. Bad input raises `LstmkitError`, which the root
turns into one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from lstmkit.cli import app
from lstmkit.cli.options import defaults, deprecated_option, option, take_deprecated
from lstmkit.errors import LstmkitError
from lstmkit.io import check_model_target, check_outside, check_writable
from lstmkit.tasks.language_model.settings import PretrainSettings
from lstmkit.tasks.text_classification.baseline import BaselineSettings
from lstmkit.tasks.text_classification.settings import TextClassifierConfig

if TYPE_CHECKING:  # the CLI starts without torch
    from lstmkit.tasks.language_model import PretrainedEncoder
    from lstmkit.tasks.text_classification import TextClassifier
    from lstmkit.tasks.text_classification.report import TrainReport

classify_app = typer.Typer(
    help="Text classification with an LSTM: train, evaluate, predict.", no_args_is_help=True
)
app.add_typer(classify_app, name="classify")

console = Console()

C = TextClassifierConfig
CD = defaults(C)
P = PretrainSettings
PD = defaults(P)

DataArg = Annotated[
    Path,
    typer.Argument(
        help="Labelled texts: a .csv/.tsv/.jsonl/.parquet file with text and label columns, "
        "or the IMDB archive aclImdb_v1.tar.gz / folder aclImdb."
    ),
]
ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Model directory written by train.")]
TextCol = Annotated[str, typer.Option("--text-column", help="Column holding the texts.")]
LabelCol = Annotated[str, typer.Option("--label-column", help="Column holding the labels.")]


def _check_out_dir(out: Path) -> None:
    """Refuse, before any training, an --out that cannot become a text model folder: a file,
    a folder with other content, a model of another kind, or a place that cannot be written."""
    check_model_target(out, "text_classifier")
    check_writable(out.parent, "--out")


def _check_out_file(path: Path, option: str, suffix: str | None = None) -> None:
    """Refuse, before any work, an output file path that names a folder or cannot be written."""
    if suffix is not None and path.suffix.lower() != suffix:
        raise LstmkitError(f"{option} {path} must end in {suffix}")
    if path.is_dir():
        example = path / f"out{suffix or '.csv'}"
        raise LstmkitError(f"{option} {path} is a folder; give a file name, e.g. {example}")
    check_writable(path.parent, option)


def _metrics_table(title: str, evaluation, model: str = "lstm") -> Table:
    """The model's scores beside the bag-of-words baseline's (n/a for a model without one)
    and, where the model has one, its mixture with the baseline (``--combined``)."""
    base, mixed = evaluation.baseline, evaluation.combined
    table = Table(title=title)
    table.add_column("metric")
    table.add_column(model, justify="right")
    table.add_column("bag-of-words", justify="right")
    if mixed is not None:
        table.add_column(f"{model} + bag-of-words", justify="right")
    for name, key in (("texts", "n"), ("accuracy", "accuracy"), ("macro F1", "macro_f1"),
                      ("loss", "loss")):  # fmt: skip
        cells = [
            "n/a" if e is None else f"{getattr(e, key):,}" if key == "n" else
            f"{getattr(e, key):.4f}"
            for e in (evaluation, base, *([mixed] if mixed is not None else []))
        ]  # fmt: skip
        table.add_row(name, *cells)
    return table


def _confusion_table(evaluation) -> Table:
    table = Table(title="confusion matrix (rows: true, columns: predicted)")
    table.add_column("true \\ predicted")
    for c in evaluation.classes:
        table.add_column(str(c), justify="right")
    for c, row in zip(evaluation.classes, evaluation.confusion, strict=True):
        table.add_row(str(c), *(f"{v:,}" for v in row))
    return table


def _history_table(history: list[dict]) -> Table:
    table = Table(title="training history")
    for name in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc"):
        table.add_column(name, justify="right")
    for row in history:
        table.add_row(
            str(int(row["epoch"]) + 1),
            *(
                f"{row[k]:.4f}" if k in row else "-"
                for k in ("train_loss", "train_acc", "val_loss", "val_acc")
            ),
        )
    return table


@classify_app.command("train")
def train(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the model to.")],
    preset: Annotated[
        str | None, typer.Option(help="Start from a preset: seed000, seed003 or imdb.")
    ] = None,
    text_column: TextCol = "text",
    label_column: LabelCol = "label",
    max_epochs: option(C, "max_epochs", optional=True) = None,
    batch_size: option(C, "batch_size", optional=True) = None,
    lr: option(C, "lr", optional=True) = None,
    embedding_dim: option(C, "embedding_dim", optional=True) = None,
    hidden_size: option(C, "hidden_size", optional=True) = None,
    num_layers: option(C, "num_layers", optional=True) = None,
    rnn: option(C, "rnn", optional=True) = None,
    num_heads: option(C, "num_heads", optional=True) = None,
    chunk_size: option(C, "chunk_size", optional=True) = None,
    bidirectional: option(
        C, "bidirectional", "--bidirectional/--unidirectional", optional=True
    ) = None,
    pooling: option(C, "pooling", optional=True) = None,
    dropout: option(C, "dropout", optional=True) = None,
    layer_norm: option(C, "layer_norm", "--layer-norm/--no-layer-norm", optional=True) = None,
    recurrent_dropout: option(C, "recurrent_dropout", optional=True) = None,
    zoneout: option(C, "zoneout", optional=True) = None,
    embedding_dropout: option(C, "embedding_dropout", optional=True) = None,
    head_dropout: option(C, "head_dropout", optional=True) = None,
    adversarial: option(
        C,
        "adversarial",
        optional=True,
        help="Adversarial training on the word vectors: move size as a fraction of their "
        "norm (e.g. 0.02; 0: off; ~2x training time).",
    ) = None,
    tokenizer: option(C, "tokenizer", optional=True) = None,
    vocab_size: option(C, "vocab_size", optional=True) = None,
    max_length: option(C, "max_length", optional=True) = None,
    keep: option(C, "keep", optional=True) = None,
    val_fraction: option(C, "val_fraction", optional=True) = None,
    seed: option(C, "seed", optional=True) = None,
    limit: Annotated[
        int | None, typer.Option(help="Train on a random subset of N texts (quick runs).")
    ] = None,
    precision: option(C, "precision", optional=True) = None,
    logger: option(
        C,
        "logger",
        optional=True,
        help="Also log training metrics to --out/logs with Lightning's csv or tensorboard logger.",
    ) = None,
    accelerator: option(C, "accelerator", optional=True) = None,
    devices: option(C, "devices", cli_type=str, optional=True) = None,
    threads: option(C, "threads", optional=True) = None,
    checkpoint_dir: option(
        C,
        "checkpoint_dir",
        cli_type=Path,
        help="Keep last.ckpt here; rerunning the same command resumes a killed run.",
    ) = None,
    pretrained: Annotated[
        Path | None,
        typer.Option(help="Start from an encoder written by 'classify pretrain' and fine-tune."),
    ] = None,
    progress: option(C, "progress") = CD["progress"],
    class_weight: Annotated[
        str | None,
        typer.Option(
            help="Weigh the loss for imbalanced labels: 'balanced' or label=weight,... "
            "(e.g. spam=5,ham=1; labels left out weigh 1)."
        ),
    ] = None,
    vectors: Annotated[
        Path | None,
        typer.Option(
            help="Start the embedding from word vectors: a word2vec/GloVe text file "
            "(optionally .gz); its dimension must equal --embedding-dim."
        ),
    ] = None,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline/--no-baseline",
            help="Also fit the bag-of-words baseline (TF-IDF 1-2-grams + logistic regression) "
            "and print it beside the model.",
        ),
    ] = True,
    baseline_kind: option(
        BaselineSettings,
        "kind",
        "--baseline-kind",
        optional=True,
        help="The baseline: tfidf (TF-IDF + logistic regression, the default) or nbsvm; "
        "not with --no-baseline.",
    ) = None,
    epochs: deprecated_option("--epochs", int) = None,
    layers: deprecated_option("--layers", int) = None,
) -> None:
    """Train a classifier on labelled texts; save it with training.png and confusion.png."""
    max_epochs = take_deprecated(max_epochs, epochs, "--max-epochs", "--epochs")
    num_layers = take_deprecated(num_layers, layers, "--num-layers", "--layers")
    from lstmkit.data.text import load_text_data
    from lstmkit.tasks.text_classification import TextClassifier
    from lstmkit.tasks.text_classification.report import fit_and_save

    # every option named after a setting of TextClassifierConfig goes to the classifier
    given = locals()
    settings = {name: given[name] for name in C.flat_fields() if name in given}
    settings["class_weight"] = _parse_class_weight(class_weight)
    settings["devices"] = _devices(devices)
    if not baseline and baseline_kind is not None:
        raise LstmkitError(
            f"--baseline-kind {baseline_kind} asks for a baseline that --no-baseline turns "
            "off; drop one of them"
        )
    if checkpoint_dir is not None:
        check_outside(checkpoint_dir, "--checkpoint-dir", out, "--out")
    clf = TextClassifier(preset, **{k: v for k, v in settings.items() if v is not None})
    from lstmkit.training import require_precision_supported

    train_settings = clf.config.train
    require_precision_supported(train_settings.precision, train_settings.accelerator)
    _check_out_dir(out)
    if pretrained is not None and vectors is not None:
        raise LstmkitError("pass either --pretrained or --vectors, not both")
    if pretrained is not None:
        clf.use_pretrained(pretrained)
    if vectors is not None:  # before reading the data: a bad file is found at once
        from lstmkit.data.word_vectors import vector_file_dim

        vector_file_dim(vectors, clf.config.embedding_dim)
    if limit is not None and limit < 2:
        raise LstmkitError(f"--limit must be at least 2, got {limit}")
    with console.status(f"reading {data}"):
        texts = load_text_data(data, text_column, label_column, split="train")
    if limit is not None:
        texts = texts.sample(limit, seed=clf.config.seed)
    console.print(
        f"training on {len(texts):,} texts from {texts.source}, classes {texts.classes()}",
        highlight=False,
    )
    report = fit_and_save(clf, texts, out, progress=progress,
                          baseline=baseline and (baseline_kind or "tfidf"),
                          vectors=vectors)  # fmt: skip
    _print_fit(clf, report, vectors, checkpoint_dir)
    console.print(f"model saved to {out} (training.png, confusion.png inside)", highlight=False)


def _print_fit(
    clf: TextClassifier, report: TrainReport, vectors: Path | None, checkpoint_dir: Path | None
) -> None:
    """What `classify train` prints after the fit: the word vectors found, where it
    resumed, the history, the scores and the confusion matrix."""
    if vectors is not None:
        info = clf.fit_info
        console.print(
            f"word vectors from {vectors}: {info.vectors_coverage:.1%} of the "
            f"{info.vocab_size - 2:,} vocabulary tokens found",
            highlight=False,
        )
    resumed = clf.fit_info.resumed_from_epoch
    if resumed is not None:
        console.print(
            f"resumed from the checkpoint in {checkpoint_dir} after epoch {resumed + 1}",
            highlight=False,
        )
    console.print(_history_table(clf.history))
    console.print(_metrics_table(report.part, report.evaluation, clf.config.rnn))
    console.print(_confusion_table(report.evaluation))


@classify_app.command("pretrain")
def pretrain(
    data: Annotated[
        list[Path],
        typer.Argument(
            help="Unlabelled texts: text files with one text per line, .csv/.tsv/.jsonl/.parquet "
            "tables with a text column, folders of .txt files, or the IMDB archive/folder "
            "(its training and unlabelled reviews). Streamed from disk."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the encoder to.")],
    preset: Annotated[
        str | None, typer.Option(help="Encoder settings of a preset: seed000, seed003 or imdb.")
    ] = None,
    text_column: TextCol = "text",
    max_epochs: option(P, "max_epochs", help="Passes over the corpus.") = PD["max_epochs"],
    max_minutes: option(P, "max_minutes") = PD["max_minutes"],
    batch_size: option(P, "batch_size") = PD["batch_size"],
    lr: option(P, "lr") = PD["lr"],
    embedding_dim: option(C, "embedding_dim", optional=True) = None,
    hidden_size: option(C, "hidden_size", optional=True) = None,
    num_layers: option(C, "num_layers", optional=True) = None,
    rnn: option(C, "rnn", optional=True) = None,
    num_heads: option(C, "num_heads", optional=True) = None,
    chunk_size: option(C, "chunk_size", optional=True) = None,
    bidirectional: option(
        C,
        "bidirectional",
        "--bidirectional/--unidirectional",
        optional=True,
        help="Pretrain a forward and a backward language model (one layer).",
    ) = None,
    tokenizer: option(C, "tokenizer", optional=True) = None,
    vocab_size: option(C, "vocab_size", optional=True) = None,
    max_length: option(
        C,
        "max_length",
        optional=True,
        help="Cut texts into pieces of N tokens (and truncate later).",
    ) = None,
    keep: option(C, "keep", optional=True) = None,
    val_texts: option(P, "val_texts") = PD["val_texts"],
    seed: option(P, "seed") = PD["seed"],
    precision: option(P, "precision") = PD["precision"],
    devices: option(
        C, "devices", cli_type=int, help="CPU processes (DDP) or GPUs to train on."
    ) = 1,
    checkpoint_dir: option(
        C,
        "checkpoint_dir",
        cli_type=Path,
        help="Keep last.ckpt here; rerunning the same command resumes a killed run.",
    ) = None,
    checkpoint_every_n_steps: option(P, "checkpoint_every_n_steps") = None,
    progress: option(C, "progress") = CD["progress"],
    epochs: deprecated_option("--epochs", int) = None,
    layers: deprecated_option("--layers", int) = None,
) -> None:
    """Pretrain the tokenizer, word vectors and LSTM on unlabelled texts (a language model)."""
    max_epochs = take_deprecated(max_epochs, epochs, "--max-epochs", "--epochs", PD["max_epochs"])
    num_layers = take_deprecated(num_layers, layers, "--num-layers", "--layers")
    from lstmkit.data.corpus import TextCorpus
    from lstmkit.tasks.language_model import KIND, PretrainSettings, check_pretrainable
    from lstmkit.tasks.text_classification import TextClassifier

    settings = {
        "embedding_dim": embedding_dim, "hidden_size": hidden_size, "num_layers": num_layers,
        "rnn": rnn, "num_heads": num_heads, "chunk_size": chunk_size,
        "bidirectional": bidirectional, "tokenizer": tokenizer,
        "vocab_size": vocab_size, "max_length": max_length, "keep": keep,
    }  # fmt: skip
    clf = TextClassifier(
        preset,
        checkpoint_dir=checkpoint_dir,
        seed=seed,
        **{k: v for k, v in settings.items() if v is not None},
    )
    run = PretrainSettings(
        max_epochs=max_epochs, max_minutes=max_minutes, batch_size=batch_size, lr=lr,
        val_texts=val_texts, seed=seed, precision=precision,
        checkpoint_every_n_steps=checkpoint_every_n_steps,
    )  # fmt: skip
    from lstmkit.training import require_precision_supported

    require_precision_supported(run.precision)
    check_pretrainable(clf.config)
    if checkpoint_dir is not None:
        check_outside(checkpoint_dir, "--checkpoint-dir", out, "--out")
    check_model_target(out, KIND)
    check_writable(out.parent, "--out")
    corpus = TextCorpus.from_paths(data, text_column)
    with console.status(f"reading {corpus.describe}"):
        corpus.check()
    console.print(f"pretraining on {corpus.describe}", highlight=False)
    clf.pretrain(corpus, progress=progress, devices=devices, **run.to_dict())
    clf.save_pretrained(out)
    pre = clf.pretrained
    assert pre is not None
    _print_pretrained(pre, out, checkpoint_dir)


def _print_pretrained(pre: PretrainedEncoder, out: Path, checkpoint_dir: Path | None) -> None:
    """What `classify pretrain` prints after the run: where it resumed, the perplexity
    per epoch, the summary and how to fine-tune the encoder."""
    info = pre.info
    if info.resumed_at_step is not None:
        epoch, done = (info.resumed_epoch or 0) + 1, info.resumed_batches or 0
        where = (
            f"after epoch {epoch}"
            if done >= info.epoch_batches
            else f"in epoch {epoch}, after {done:,} of its {info.epoch_batches:,} batches"
        )
        console.print(
            f"resumed from the checkpoint in {checkpoint_dir} at step "
            f"{info.resumed_at_step:,} ({where})",
            highlight=False,
        )
    shown = Table(title="language model")
    for col in ("epoch", "train perplexity", "val perplexity", "tokens seen", "seconds"):
        shown.add_column(col, justify="right")
    for row in pre.history:
        shown.add_row(
            str(int(row["epoch"]) + 1),
            f"{row.get('train_perplexity', float('nan')):.1f}",
            f"{row.get('val_perplexity', float('nan')):.1f}",
            f"{int(row.get('tokens', 0)):,}",
            f"{row.get('seconds', float('nan')):.0f}",
        )
    console.print(shown)
    stop = " (stopped at --max-minutes)" if info.stopped_by_time else ""
    console.print(
        f"{info.texts:,} texts ({info.val_texts:,} held out), {info.vocab_size:,} tokens in the "
        f"vocabulary, {info.tokens_per_second:,.0f} tokens/s, {info.fit_seconds / 60:.1f} min"
        f"{stop}",
        highlight=False,
    )
    console.print(
        f"encoder saved to {out} (perplexity.png inside); fine-tune it with: lstmkit classify "
        f"train DATA --pretrained {out} --out MODEL",
        highlight=False,
    )


@classify_app.command("evaluate")
def evaluate(
    data: DataArg,
    model: ModelOpt,
    text_column: TextCol = "text",
    label_column: LabelCol = "label",
    split: Annotated[str, typer.Option(help="IMDB split to score: test or train.")] = "test",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for metrics.json and confusion.png.")
    ] = None,
) -> None:
    """Score a trained model on labelled texts: accuracy, macro F1, confusion matrix."""
    from lstmkit.data.text import load_text_data
    from lstmkit.tasks.text_classification import TextClassifier
    from lstmkit.tasks.text_classification.report import save_evaluation

    if out is not None and out.exists() and not out.is_dir():
        raise LstmkitError(
            f"--out {out} is a file; give a folder for metrics.json and confusion.png"
        )
    if out is not None:
        check_writable(out, "--out")
    clf = TextClassifier.load(model)
    with console.status(f"reading {data}"):
        texts = load_text_data(data, text_column, label_column, split=split, min_classes=1)
    with console.status(f"scoring {len(texts):,} texts"):
        evaluation = clf.evaluate(texts.texts, texts.labels)
    console.print(_metrics_table(f"{texts.source}", evaluation, clf.config.rnn))
    console.print(_confusion_table(evaluation))
    if out is not None:
        save_evaluation(evaluation, out)
        console.print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}", highlight=False)


@classify_app.command("predict")
def predict(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Texts to classify, or one file: a .csv/.tsv/.jsonl/.parquet with a text "
            "column, or a text file with one text per line. An argument without spaces that "
            "ends in .csv/.tsv/.jsonl/.json/.parquet/.txt or holds a '/' is taken as a file "
            "name and must exist; use --text to classify such arguments as texts."
        ),
    ],
    model: ModelOpt,
    text_column: TextCol = "text",
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the predictions to this CSV.")
    ] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    literal: Annotated[
        bool,
        typer.Option("--text", help="Classify every argument as a text, even if it names a file."),
    ] = False,
    chunk_size: Annotated[
        int,
        typer.Option(
            help="With a file and --output: texts read and predicted at a time (the file is "
            "streamed, so memory does not grow with it)."
        ),
    ] = 2000,
    show: Annotated[
        int, typer.Option(help="With a file and --output: rows of the table printed.")
    ] = 10,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    combined: Annotated[
        bool,
        typer.Option(
            "--combined",
            help="Predict with the mixture of the network and its bag-of-words baseline "
            "(weight chosen on the validation split in training).",
        ),
    ] = False,
) -> None:
    """Predict the label and class probabilities of each text.

    A file with --output is streamed: read, predicted and written chunk by chunk (bounded
    memory, progress bar on stderr); the output appears only when complete and the first
    --show rows are printed.
    """
    from lstmkit.data.text import texts_from_arguments
    from lstmkit.io.atomic import atomic_write_text
    from lstmkit.tasks.text_classification import TextClassifier

    if output is not None:
        _check_out_file(output, "--output")
    if chunk_size < 1:
        raise LstmkitError(f"--chunk-size must be at least 1, got {chunk_size}")
    if show < 0:
        raise LstmkitError(f"--show must be 0 or more, got {show}")
    clf = TextClassifier.load(model)
    if output is not None and not literal and len(inputs) == 1 and Path(inputs[0]).is_file():
        _predict_stream(clf, Path(inputs[0]), output, text_column, chunk_size, show,
                        json_lines, progress, combined)  # fmt: skip
        return
    table = clf.predict_table(texts_from_arguments(inputs, text_column, literal), combined=combined)
    if output is not None:
        atomic_write_text(output, table.to_csv(index=False, float_format="%.6f"))
    if json_lines:
        _json_lines(clf, table)
        return
    console.print(_prediction_table(clf, table))
    if output is not None:
        console.print(f"wrote {output}", highlight=False)


def _prediction_table(clf, table) -> Table:
    shown = Table()
    shown.add_column("text", overflow="ellipsis", max_width=60, no_wrap=True)
    shown.add_column("label")
    for c in clf.classes:
        shown.add_column(f"p({c})", justify="right")
    for row in table.itertuples(index=False):
        shown.add_row(row.text, str(row.label), *(f"{v:.3f}" for v in row[2:]))
    return shown


def _json_lines(clf, table) -> None:
    for row in table.itertuples(index=False):
        p = {str(c): round(float(v), 6) for c, v in zip(clf.classes, row[2:], strict=True)}
        print(json.dumps({"text": row.text, "label": _plain(row.label), "probabilities": p}))


def _predict_stream(
    clf, source: Path, output: Path, text_column: str, chunk_size: int, show: int,
    json_lines: bool, progress: bool, combined: bool = False,
) -> None:  # fmt: skip
    """``classify predict FILE --output OUT``: chunk by chunk into OUT (see `predict_file`)."""
    from lstmkit.tasks.text_classification.stream import predict_file

    summary = predict_file(
        clf, source, output, text_column=text_column, chunk_size=chunk_size,
        head_rows=0 if json_lines else show, progress=progress and not json_lines,
        on_chunk=(lambda _chunk, table: _json_lines(clf, table)) if json_lines else None,
        combined=combined,
    )  # fmt: skip
    if json_lines:
        return
    if summary.head is not None and len(summary.head):
        console.print(_prediction_table(clf, summary.head))
    counts = ", ".join(f"{label} {n:,}" for label, n in summary.counts.items())
    more = f"first {len(summary.head)} shown; " if summary.head is not None else ""
    console.print(
        f"{summary.n:,} texts predicted ({more}labels: {counts}); wrote {output}",
        highlight=False,
    )


def _devices(text: str | None) -> int | str | None:
    """``--devices``: a count, or Lightning's text ("auto", "0,1")."""
    return int(text) if text is not None and text.isdigit() else text


def _parse_class_weight(text: str | None) -> str | dict[str, float] | None:
    """``--class-weight``: None, "balanced" or "label=weight,..." as a dict (labels as text;
    the estimator matches them to integer classes too)."""
    if text is None or text.strip() == "balanced":
        return None if text is None else "balanced"
    weights: dict[str, float] = {}
    for part in text.split(","):
        label, eq, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if not eq or not label.strip() or weight is None:
            raise LstmkitError(
                f"--class-weight {text!r}: expected 'balanced' or label=weight pairs separated "
                f"by commas, e.g. --class-weight pos=2,neg=1"
            )
        if label.strip() in weights:
            raise LstmkitError(
                f"--class-weight {text!r}: the label {label.strip()!r} is given twice; give "
                "each label one weight"
            )
        weights[label.strip()] = weight
    return weights


def _plain(label: object) -> str | int:
    """A label as JSON writes it (NumPy integers from a DataFrame become int)."""
    return label if isinstance(label, str) else int(label)


@app.command("inspect")
def inspect(
    text: Annotated[str, typer.Argument(help="The text to run through the model.")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path(
        "inspect.png"
    ),
    layer: Annotated[int, typer.Option(help="Recurrent layer to show (-1: the last).")] = -1,
    direction: Annotated[int, typer.Option(help="0: forward, 1: backward (bidirectional).")] = 0,
    max_tokens: Annotated[int, typer.Option(help="Show at most N tokens.")] = 120,
) -> None:
    """Heat map of a text classifier's gates and cell state over the tokens of TEXT.

    Shows the input, forget and output gates and the cell state of one recurrent layer
    (GRU: reset and update gates, candidate and hidden state), and the attention weights
    when the model pools with attention.
    """
    from lstmkit.plots.text import plot_gates
    from lstmkit.tasks.text_classification import TextClassifier

    if max_tokens < 1:
        raise LstmkitError(f"--max-tokens must be at least 1, got {max_tokens}")
    _check_out_file(out, "--out", ".png")
    clf = TextClassifier.load(model)
    trace = clf.explain(text, layer=layer, direction=direction)
    plot_gates(trace, out, max_tokens=max_tokens)
    proba = ", ".join(
        f"{c}: {p:.3f}" for c, p in zip(trace.classes, trace.probabilities, strict=True)
    )
    console.print(
        f"predicted {trace.predicted} ({proba}); {len(trace.tokens)} tokens", highlight=False
    )
    console.print(f"wrote {out}", highlight=False)


@classify_app.command("download-imdb")
def download_imdb_command(
    dest: Annotated[
        Path | None,
        typer.Option(
            help="Where to store the archive (default $LSTMKIT_DATA or ~/.cache/lstmkit)."
        ),
    ] = None,
    url: Annotated[str | None, typer.Option(help="Another mirror of aclImdb_v1.tar.gz.")] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Expected SHA-256 (default: the official archive's).")
    ] = None,
) -> None:
    """Download the IMDB archive (aclImdb_v1.tar.gz) and check its SHA-256."""
    from lstmkit.data.imdb import IMDB_SHA256, IMDB_URL, download_imdb

    path = download_imdb(dest, url=url or IMDB_URL, sha256=sha256 or IMDB_SHA256)
    console.print(f"IMDB archive at {path}", highlight=False)
