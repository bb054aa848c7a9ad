"""Predictions for a file of texts, streamed: bounded memory whatever the file's size.

`predict_file` reads the input in chunks (`lstmkit.data.text_stream.iter_text_chunks`),
predicts each chunk with `TextClassifier.predict_table` and appends the rows to a
temporary CSV beside the output, which replaces the output only when every chunk is
done (`lstmkit.io.atomic.atomic_write`): a failure or a kill never leaves a partial
file under the output's name. The CSV has the columns of ``predict_table`` (text, label,
p_<class> per class), the same as predicting the whole file at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lstmkit.data.text_stream import TextChunk, iter_text_chunks, stream_total
from lstmkit.io.atomic import atomic_write
from lstmkit.tasks.text_classification.estimator import TextClassifier


@dataclass
class StreamSummary:
    """What `predict_file` did: ``n`` texts, predicted label counts, the first rows of the
    output (``head``, at most ``head_rows``) and the output path."""

    n: int
    counts: dict = field(default_factory=dict)
    head: pd.DataFrame | None = None
    output: Path | None = None


def predict_file(
    clf: TextClassifier,
    source: str | Path,
    output: str | Path,
    *,
    text_column: str = "text",
    chunk_size: int = 2000,
    head_rows: int = 10,
    on_chunk: Callable[[TextChunk, pd.DataFrame], None] | None = None,
    progress: bool = False,
    combined: bool = False,
) -> StreamSummary:
    """Predict every text of ``source`` into the CSV ``output``, one chunk at a time.

    Args:
        clf: a fitted or loaded classifier.
        source: a .csv/.tsv/.jsonl (optionally gzipped) or .parquet file with a
            ``text_column``, or a file of one text per line.
        output: the CSV to write (replaced atomically at the end).
        chunk_size: texts read and predicted at a time (memory grows with it, not with
            the file).
        head_rows: rows of the output kept in the summary (for printing).
        on_chunk: called with each chunk and its predictions (n_chunk rows).
        progress: show a progress bar on stderr (rich).
        combined: predict with the network's mixture with its bag-of-words baseline
            (see `TextClassifier.predict_proba`).
    """
    if combined:  # a model without the mixture fails before the output is started
        clf.require_mixture()
    summary = StreamSummary(0, output=Path(output))
    counts: Counter = Counter()
    heads: list[pd.DataFrame] = []

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh, _Progress(source, progress) as bar:
            for chunk in iter_text_chunks(source, text_column, chunk_size):
                table = clf.predict_table(chunk.texts, combined=combined)
                table.to_csv(fh, index=False, header=summary.n == 0, float_format="%.6f")
                summary.n += len(table)
                counts.update(table["label"].tolist())
                if sum(len(h) for h in heads) < head_rows:
                    heads.append(table.head(head_rows - sum(len(h) for h in heads)))
                if on_chunk is not None:
                    on_chunk(chunk, table)
                bar.update(chunk.position, summary.n)

    atomic_write(output, write)
    summary.counts = {label: counts[label] for label in clf.classes if label in counts}
    summary.head = pd.concat(heads, ignore_index=True) if heads else None
    return summary


class _Progress:
    """A rich progress bar on stderr over the file's bytes (rows for Parquet); nothing when
    disabled or when stderr is not a terminal."""

    def __init__(self, source: str | Path, enabled: bool) -> None:
        self.enabled = enabled
        self.source = Path(source)
        self.bar = None

    def __enter__(self) -> _Progress:
        from rich.console import Console

        console = Console(stderr=True)
        if self.enabled and console.is_terminal:  # a pipe or log gets no bar lines
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("predicting {task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[texts]:,} texts"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task(
                self.source.name, total=max(stream_total(self.source), 1), texts=0
            )
        return self

    def update(self, position: int, texts: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=position, texts=texts)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
