"""The recurrent layer of both tasks: an LSTM, GRU, sLSTM or mLSTM from one set of settings.

The forecaster's encoder and the text encoder are one of `RNNS`; `check_rnn_settings`
refuses, in one `LstmkitError` line naming the setting, what a kind does not take (the
LSTM/GRU variants on an xLSTM layer, heads or a chunk size on an LSTM/GRU, a head count
that does not divide the width, a chunk size below 1) before anything is read or trained,
and `make_rnn` builds the layer (`lstmkit.nn`).

The xLSTM layers (Beck et al. 2024, `lstmkit.nn.SLSTM` / `MLSTM`):

- ``"slstm"``: the sLSTM, ``num_heads`` recurrent blocks over ``hidden_size`` (the fused
  CPU kernel where it builds);
- ``"mlstm"``: the reference package's whole mLSTM layer (up-projection to twice the
  width, causal convolution, q/k/v, matrix memory of ``num_heads`` heads, skip, output
  gate, down-projection to ``hidden_size``) in its chunkwise-parallel form of
  ``chunk_size`` steps per chunk (memory linear in the sequence length).

Both start from the xLSTM initialisation (the reference package's); ``num_heads`` None
takes the largest of 4, 2 and 1 that divides ``hidden_size``.
"""

from __future__ import annotations

import math
from typing import Any

from lstmkit.errors import LstmkitError

#: the recurrent layers a task builds
RNNS = ("lstm", "gru", "slstm", "mlstm")
#: the xLSTM ones (heads; the LSTM/GRU variants do not apply)
XLSTM_RNNS = ("slstm", "mlstm")
#: steps per chunk of the mLSTM's chunkwise form when ``chunk_size`` is None
DEFAULT_CHUNK_SIZE = 64


def default_num_heads(hidden_size: int) -> int:
    """The heads an xLSTM layer of ``hidden_size`` gets when ``num_heads`` is None: the
    largest of 4, 2 and 1 that divides it (the reference package's default is 4)."""
    return next(h for h in (4, 2, 1) if hidden_size % h == 0)


def check_rnn_settings(
    rnn: str,
    hidden_size: int,
    num_heads: int | None,
    chunk_size: int | None,
    *,
    variants: dict[str, Any],
    option: str = "rnn",
) -> None:
    """Refuse settings the layer ``rnn`` cannot take, in one `LstmkitError` line.

    ``variants``: the LSTM/GRU options that are set (name -> value; False, 0 and None
    count as off), which an sLSTM/mLSTM does not have. ``option``: what the message calls
    the setting naming the layer (``"rnn"``, ``"model"``).
    """
    if rnn not in RNNS:
        raise LstmkitError(f"{option} must be one of {', '.join(RNNS)}, got {rnn!r}")
    for name, value in (("num_heads", num_heads), ("chunk_size", chunk_size)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise LstmkitError(f"{name} must be a positive integer (or None), got {value!r}")
    if rnn not in XLSTM_RNNS:
        if num_heads is not None:
            raise LstmkitError(
                f"num_heads={num_heads} applies to {option} slstm or mlstm, not {rnn}; drop it"
            )
        if chunk_size is not None:
            raise LstmkitError(
                f"chunk_size={chunk_size} applies to {option} mlstm, not {rnn}; drop it"
            )
        return
    on = [name for name, value in variants.items() if value]
    if on:
        raise LstmkitError(
            f"{', '.join(on)} {'apply' if len(on) > 1 else 'applies'} to {option} lstm or gru; "
            f"an {rnn} layer does not have {'them' if len(on) > 1 else 'it'}: drop "
            f"{' / '.join(on)} or use lstm"
        )
    if rnn == "slstm" and chunk_size is not None:
        raise LstmkitError(f"chunk_size={chunk_size} applies to {option} mlstm, not slstm; drop it")
    if num_heads is not None and hidden_size % num_heads:
        raise LstmkitError(
            f"num_heads ({num_heads}) must divide hidden_size ({hidden_size}): the {rnn}'s "
            f"heads split its width evenly; use one of {_divisors(hidden_size)}"
        )


def _divisors(n: int) -> str:
    small = [d for d in range(1, min(n, 64) + 1) if n % d == 0]
    return ", ".join(str(d) for d in small[:8])


def make_rnn(
    rnn: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    *,
    dropout: float,
    bidirectional: bool,
    num_heads: int | None = None,
    chunk_size: int | None = None,
    **variants: Any,
) -> Any:
    """The ``batch_first`` recurrent layer ``rnn`` (one of `RNNS`): dropout between
    stacked layers only; ``variants`` (``layer_norm``, ``recurrent_dropout``, ``zoneout``,
    ``init``) go to an LSTM/GRU, an xLSTM layer takes ``num_heads`` and, the mLSTM,
    ``chunk_size`` (settings checked by `check_rnn_settings` first)."""
    from lstmkit.nn import GRU, LSTM, MLSTM, SLSTM

    common = {
        "num_layers": num_layers,
        "batch_first": True,
        "dropout": dropout if num_layers > 1 else 0.0,
        "bidirectional": bidirectional,
    }
    if rnn not in XLSTM_RNNS:
        return (LSTM if rnn == "lstm" else GRU)(input_size, hidden_size, **common, **variants)
    heads = num_heads if num_heads is not None else default_num_heads(hidden_size)
    if rnn == "slstm":
        return SLSTM(input_size, hidden_size, **common, num_heads=heads)
    inner = 2 * hidden_size  # the reference package's projection factor
    return MLSTM(
        input_size,
        hidden_size,
        **common,
        num_heads=heads,
        qkv_blocksize=math.gcd(4, inner),  # the package's 4 where it divides the width
        chunk_size=chunk_size if chunk_size is not None else DEFAULT_CHUNK_SIZE,
    )
