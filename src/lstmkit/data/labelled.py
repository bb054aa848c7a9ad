"""Labelled texts as read from any source: `LabelledTexts` and the `Label` type.

The one type shared by the table reader (`lstmkit.data.text`) and the IMDB reader
(`lstmkit.data.imdb`); it lives here so neither of those imports the other's module
for it (``text`` uses ``imdb`` to dispatch; ``imdb`` needs only this).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Label = str | int


@dataclass
class LabelledTexts:
    """Texts with their labels, as read from a file.

    texts: n strings; labels: n labels (all strings or all integers); source: where
    they came from (for messages).
    """

    texts: list[str]
    labels: list[Label]
    source: str = ""
    extra: dict[str, list] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def classes(self) -> list[Label]:
        """The distinct labels, sorted."""
        return sorted(set(self.labels))

    def subset(self, indices: Sequence[int]) -> LabelledTexts:
        """The rows at ``indices`` (in that order)."""
        return LabelledTexts(
            [self.texts[i] for i in indices],
            [self.labels[i] for i in indices],
            self.source,
            {k: [v[i] for i in indices] for k, v in self.extra.items()},
        )

    def sample(self, n: int, seed: int = 0) -> LabelledTexts:
        """A random subset of ``n`` rows (all rows when ``n`` >= len), kept in file order."""
        import numpy as np

        idx = np.random.default_rng(seed).permutation(len(self))[:n]
        return self.subset(sorted(idx.tolist()))
