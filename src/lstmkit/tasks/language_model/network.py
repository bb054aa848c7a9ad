"""The language model's network: the encoder it shares with the classifier, and the
adaptive softmax over the vocabulary that it is pretrained with.

`make_encoder` builds the word vectors (``embedding``), their dropout and the LSTM/GRU
(``rnn``) from `EncoderSettings`: the language model and the text classifier
(`lstmkit.tasks.text_classification.TextClassifierNet`) both build theirs with it, so
their parameter names and shapes agree and pretrained weights load into the classifier.
`LanguageModelNet` puts an adaptive softmax (Grave et al. 2017,
``torch.nn.AdaptiveLogSoftmaxWithLoss``) on the encoder's outputs: the forward direction
predicts the next token, the backward direction (bidirectional) the previous one.
`require_finite_weights` refuses NaN or infinite weights in one line.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lstmkit.data.tokenize import PAD_ID
from lstmkit.errors import LstmkitError
from lstmkit.nn import GRU, LSTM, MLSTM, SLSTM
from lstmkit.tasks.language_model.settings import EncoderSettings, check_pretrainable
from lstmkit.tasks.rnn import XLSTM_RNNS, make_rnn


def make_encoder(
    vocab_size: int, config: EncoderSettings
) -> tuple[nn.Embedding, nn.Dropout, LSTM | GRU | SLSTM | MLSTM]:
    """The encoder the classifier and its pretraining language model share: the word
    vectors (``embedding``), their dropout and the LSTM/GRU/sLSTM/mLSTM (``rnn``, see
    `lstmkit.tasks.rnn`), built from
    ``config`` so that the parameter names and shapes of both networks agree."""
    embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=PAD_ID)
    if config.init == "keras":
        with torch.no_grad():
            embedding.weight.uniform_(-0.05, 0.05)
            embedding.weight[PAD_ID].zero_()
    # lengths= keeps padding out of every step, both directions (see lstmkit.nn.layers)
    variants = {
        "init": config.init,
        "layer_norm": config.layer_norm,
        "recurrent_dropout": config.recurrent_dropout,
        "zoneout": config.zoneout,
    }
    rnn = make_rnn(
        config.rnn,
        config.embedding_dim,
        config.hidden_size,
        config.num_layers,
        dropout=config.dropout,
        bidirectional=config.bidirectional,
        num_heads=config.num_heads,
        chunk_size=config.chunk_size,
        **({} if config.rnn in XLSTM_RNNS else variants),
    )  # fmt: skip
    return embedding, nn.Dropout(config.embedding_dropout), rnn


def adaptive_cutoffs(vocab_size: int) -> list[int]:
    """Cluster boundaries of the adaptive softmax for a frequency-sorted vocabulary:
    the 2,000 most frequent ids in the head, then clusters up to 10,000 and the rest."""
    cuts = [c for c in (2000, 10000) if c < vocab_size - 1]
    return cuts or [max(vocab_size // 2, 1)]


class LanguageModelNet(nn.Module):
    """Embedding -> LSTM/GRU -> dropout -> adaptive softmax over the vocabulary.

    forward(ids (batch, time) int64, lengths (batch,) int64) -> (summed negative
    log-likelihood of every predicted token (scalar), number of predicted tokens).
    The forward direction's output at step t predicts token t+1; with a bidirectional
    encoder the backward direction's output at step t predicts token t-1.
    """

    def __init__(self, vocab_size: int, config: EncoderSettings, output_dropout: float):
        super().__init__()
        check_pretrainable(config)
        self.config = config
        self.embedding, self.embedding_dropout, self.rnn = make_encoder(vocab_size, config)
        self.output_dropout = nn.Dropout(output_dropout)
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(
            config.hidden_size, vocab_size, cutoffs=adaptive_cutoffs(vocab_size), div_value=4.0
        )

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        x = self.embedding_dropout(self.embedding(ids))
        out, _ = self.rnn(x, lengths=lengths.cpu())
        out = self.output_dropout(out.float())
        h = self.config.hidden_size
        steps = ids.shape[1]
        # position t predicts t+1 (forward) / t-1 (backward) where both are real tokens
        real = torch.arange(steps - 1, device=ids.device)[None, :] < (lengths[:, None] - 1)
        hidden = [out[:, :-1, :h][real]]
        targets = [ids[:, 1:][real]]
        if self.config.bidirectional:
            hidden.append(out[:, 1:, h:][real])
            targets.append(ids[:, :-1][real])
        hid, tgt = torch.cat(hidden), torch.cat(targets)
        if tgt.numel() == 0:  # every text one token long: nothing to predict
            return out.sum() * 0.0, torch.zeros((), dtype=torch.long)
        nll = -self.softmax(hid, tgt).output.sum()
        return nll, torch.tensor(tgt.numel())

    def encoder_state(self) -> dict[str, Tensor]:
        """The weights a classifier takes over: ``embedding.*`` and ``rnn.*``."""
        return {
            k: v.detach().cpu().clone()
            for k, v in self.state_dict().items()
            if k.startswith(("embedding.", "rnn."))
        }


def require_finite_weights(state: dict[str, Tensor], problem: str, fix: str) -> None:
    """Raise `LstmkitError` "<problem> (<first bad tensor>); <fix>" if any weight is not finite."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise LstmkitError(f"{problem} ({name}); {fix}")
