"""TextClassifier: learning, padding invariance, metrics, presets, save/load, explain."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from conftest import forget_digests

from lstmkit import TextClassifier
from lstmkit.data.tokenize import TextTokenizer
from lstmkit.errors import LstmkitError
from lstmkit.tasks.text_classification import (
    PRESETS,
    TextClassifierConfig,
    confusion_matrix,
    macro_f1,
    make_config,
)

CUES = {
    "pos": ["great", "wonderful", "superb", "loved"],
    "neg": ["awful", "boring", "terrible", "hated"],
    "mixed": ["okay", "average", "fine", "mediocre"],
}
FILLER = ["the", "a", "movie", "film", "plot", "actor", "scene", "it", "was", "and", "of", "this"]


def make_texts(n: int, classes=("neg", "pos"), seed: int = 0):
    """Random filler with one class cue word somewhere (length 3..40)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.choice(classes)
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 39))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(CUES[str(label)]))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


SMALL = dict(embedding_dim=16, hidden_size=16, batch_size=32, lr=1e-2, seed=0)


@pytest.fixture(scope="module")
def trained():
    texts, labels = make_texts(480)
    clf = TextClassifier(**SMALL, max_epochs=6, bidirectional=True, pooling="max")
    clf.fit(texts, labels, progress=False)
    return clf


def test_learns_cue_words(trained):
    texts, labels = make_texts(200, seed=1)
    result = trained.evaluate(texts, labels)
    assert result.accuracy > 0.9
    assert trained.predict(["the movie was wonderful", "the plot was awful"]) == ["pos", "neg"]
    hist = trained.history
    assert len(hist) == 6 and {"train_loss", "val_loss", "train_acc", "val_acc"} <= set(hist[0])
    assert trained.train_info["val_texts"] == 96  # stratified 20% of 480


def test_predict_proba_shape_and_order(trained):
    proba = trained.predict_proba(["loved it", "hated it", "a film"])
    assert proba.shape == (3, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert trained.classes == ["neg", "pos"]
    assert proba[0, 1] > 0.5 > proba[1, 1]


def test_padded_batch_equals_one_by_one(trained):
    texts, _ = make_texts(40, seed=2)
    batched = trained.predict_proba(texts, batch_size=16)
    single = np.concatenate([trained.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_padding_does_not_change_logits_in_the_net(trained):
    net = trained.net
    ids = trained.tokenizer.encode(["the movie was wonderful and the actor superb", "awful"])
    padded = torch.zeros(2, len(ids[0]), dtype=torch.int64)
    for i, seq in enumerate(ids):
        padded[i, : len(seq)] = torch.tensor(seq)
    lengths = torch.tensor([len(s) for s in ids])
    with torch.no_grad():
        both = net(padded, lengths)
        alone = torch.cat([net(torch.tensor([s]), torch.tensor([len(s)])) for s in ids])
    torch.testing.assert_close(both, alone, atol=1e-6, rtol=1e-5)


def test_metrics_by_hand():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # F1 per class: 2tp/(2tp+fp+fn): class0 2/(2+1+1)=0.5, class1 4/(4+1)=0.8, class2 2/3
    assert macro_f1(y_true, y_pred, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # a class that never occurs does not count
    assert macro_f1([0, 1], [0, 1], 3) == pytest.approx(1.0)
    assert macro_f1([0, 0], [1, 1], 2) == 0.0 and np.isnan(macro_f1([], [], 2))
    assert confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]


def test_evaluate_matches_independent_count(trained):
    texts, labels = make_texts(100, seed=3)
    result = trained.evaluate(texts, labels)
    pred = trained.predict(texts)
    assert result.accuracy == pytest.approx(
        np.mean([p == y for p, y in zip(pred, labels, strict=True)])
    )
    for i, true in enumerate(result.classes):
        for j, guess in enumerate(result.classes):
            count = sum(1 for p, y in zip(pred, labels, strict=True) if y == true and p == guess)
            assert result.confusion[i, j] == count
    with pytest.raises(LstmkitError, match="not seen in training"):
        trained.evaluate(["a film"], ["other"])


def test_multiclass_integer_labels_gru_attention():
    texts, labels = make_texts(360, classes=("neg", "pos", "mixed"), seed=4)
    ints = [{"neg": 0, "pos": 1, "mixed": 2}[y] for y in labels]
    clf = TextClassifier(
        **SMALL, max_epochs=6, rnn="gru", pooling="attention", num_layers=2, dropout=0.1
    )
    clf.fit(texts, ints, progress=False)
    assert clf.classes == [0, 1, 2]
    assert clf.net.head.out_features == 3
    test_texts, test_labels = make_texts(90, classes=("neg", "pos", "mixed"), seed=5)
    test_ints = [{"neg": 0, "pos": 1, "mixed": 2}[y] for y in test_labels]
    result = clf.evaluate(test_texts, test_ints)
    assert result.accuracy > 0.6 and result.confusion.shape == (3, 3)
    assert all(isinstance(p, int) for p in clf.predict(test_texts[:5]))
    trace = clf.explain("this film was average and fine")
    assert set(trace.gates) == {"reset", "update", "candidate", "hidden"}
    assert trace.attention.shape == (6,)
    assert trace.attention.sum() == pytest.approx(1.0, abs=1e-5)


def test_save_load_round_trip(trained, tmp_path):
    path = trained.save(tmp_path / "model", extras={"note.txt": "hi"})
    assert {p.name for p in path.iterdir()} >= {
        "config.json", "model.safetensors", "tokenizer.json", "training.json", "note.txt",
    }  # fmt: skip
    meta = json.loads((path / "config.json").read_text())
    assert meta["kind"] == "text_classifier" and meta["config"]["classes"] == ["neg", "pos"]
    loaded = TextClassifier.load(path)
    texts, _ = make_texts(30, seed=6)
    np.testing.assert_allclose(loaded.predict_proba(texts), trained.predict_proba(texts), atol=1e-7)
    assert loaded.config == trained.config and loaded.history == trained.history


def test_load_errors(trained, tmp_path):
    with pytest.raises(LstmkitError):
        TextClassifier.load(tmp_path / "missing")
    path = trained.save(tmp_path / "model")
    (path / "tokenizer.json").write_text("{not json")
    with pytest.raises(LstmkitError, match="tokenizer"):
        TextClassifier.load(path)
    (path / "tokenizer.json").unlink()
    with pytest.raises(LstmkitError):
        TextClassifier.load(path)


def test_explain_lstm_gates_match_torch_lstm(trained):
    """Gates and cell state equal torch.nn.LSTM's run on the same weights (both directions)."""
    text = "the movie was wonderful and the actor superb"
    trace = trained.explain(text)
    assert set(trace.gates) == {"input", "forget", "candidate", "output", "cell"}
    ids = trained.tokenizer.encode([text])[0]
    assert trace.tokens == [trained.tokenizer.tokenizer.id_to_token(i) for i in ids]
    rnn = trained.net.rnn
    ref = torch.nn.LSTM(rnn.input_size, rnn.hidden_size, batch_first=True, bidirectional=True)
    ref.load_state_dict(rnn.state_dict())  # lstmkit.nn layers share torch's parameter names
    ref.double()
    with torch.no_grad():
        x = trained.net.embedding(torch.tensor([ids])).double()
        out, (_, c_n) = ref(x)
    hidden = rnn.hidden_size
    for d, gates in enumerate((trace, trained.explain(text, 0, 1))):
        # the forward direction ends at the last token, the reverse one at the first
        last = -1 if d == 0 else 0
        np.testing.assert_allclose(gates.gates["cell"][last], c_n[d, 0].numpy(), atol=1e-5)
        # h_t = o_t * tanh(c_t) at every step
        h = gates.gates["output"] * np.tanh(gates.gates["cell"])
        np.testing.assert_allclose(h, out[0, :, d * hidden : (d + 1) * hidden].numpy(), atol=1e-5)
    for gate in ("input", "forget", "output"):
        assert (trace.gates[gate] >= 0).all() and (trace.gates[gate] <= 1).all()
    with pytest.raises(LstmkitError, match="direction"):
        trained.explain(text, direction=2)


def test_presets_reproduce_the_seeds():
    s3 = make_config("seed003")
    assert (s3.tokenizer.vocab_size, s3.tokenizer.max_length, s3.tokenizer.keep) == (
        10_000,
        200,
        "tail",
    )
    assert (s3.embedding_dim, s3.hidden_size, s3.num_layers, s3.bidirectional) == (
        128,
        128,
        1,
        False,
    )
    assert (s3.max_epochs, s3.batch_size, s3.val_fraction, s3.pooling) == (5, 64, 0.2, "last")
    s0 = make_config("seed000")
    assert (s0.embedding_dim, s0.hidden_size, s0.num_layers, s0.dropout) == (100, 32, 2, 0.5)
    assert (s0.pooling, s0.max_epochs, s0.head_dropout) == ("last", 5, 0.5)
    assert set(PRESETS) == {"seed000", "seed003", "imdb"}
    with pytest.raises(LstmkitError, match="unknown preset"):
        make_config("seed999")


def test_config_json_round_trip_and_validation():
    cfg = make_config("imdb", hidden_size=64, tokenizer="bpe", max_length=50)
    again = TextClassifierConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.tokenizer.kind == "bpe" and again.tokenizer.max_length == 50
    with pytest.raises(LstmkitError, match="pooling"):
        make_config(pooling="median")
    with pytest.raises(LstmkitError, match="unknown text classifier setting 'hiden_size'; known"):
        make_config(hiden_size=3)


def test_fit_rejects_bad_input():
    with pytest.raises(LstmkitError, match="at least two classes"):
        TextClassifier(**SMALL).fit(["a", "b"], ["x", "x"], progress=False)
    with pytest.raises(LstmkitError, match="empty text"):
        TextClassifier(**SMALL).fit(["a", " "], ["x", "y"], progress=False)
    with pytest.raises(LstmkitError, match="not trained"):
        TextClassifier().predict(["a"])


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
@pytest.mark.parametrize("grad", [False, True])
def test_net_padded_batch_equals_each_text_alone(rnn, grad):
    """Two bidirectional layers, every pooling: logits of a padded batch equal each text alone.

    With autograd on (training) the layer runs torch's padded kernel per direction, without it
    the packed kernel; both must keep padding out of every real step.
    """
    from lstmkit.tasks.text_classification import TextClassifierNet

    torch.manual_seed(0)
    cfg = make_config(embedding_dim=6, hidden_size=5, num_layers=2, bidirectional=True, rnn=rnn,
                      pooling="last+mean+max+attention")  # fmt: skip
    net = TextClassifierNet(vocab_size=30, num_classes=3, config=cfg).eval()
    assert type(net.rnn).__module__ == "lstmkit.nn.layers"
    lengths = torch.tensor([7, 3, 5, 1])
    ids = torch.randint(1, 30, (4, 7))
    for i, n in enumerate(lengths.tolist()):
        ids[i, n:] = 0
    with torch.set_grad_enabled(grad):
        batch = net(ids, lengths)
        alone = torch.cat(
            [net(ids[i : i + 1, :n], torch.tensor([n])) for i, n in enumerate(lengths.tolist())]
        )
    torch.testing.assert_close(batch, alone, atol=1e-6, rtol=1e-5)


def _edit_config(path, edit) -> None:
    meta = json.loads((path / "config.json").read_text())
    edit(meta["config"])
    (path / "config.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda c: c.update(classes=["pos"]), "at least two distinct classes"),
        (lambda c: c.update(classes=["neg", "neg"]), "at least two distinct classes"),
        (lambda c: c.update(classes="np"), "must be a list of class names"),
        (lambda c: c.update(classes=["neg", "pos", "mixed"]), "head has 1 outputs"),
        (lambda c: c.update(vocab_size=-5), "vocab_size must be an integer >= 3"),
        (lambda c: c.update(vocab_size=c["vocab_size"] + 1), "the tokenizer has"),
        (lambda c: c["model"].update(hidden_size=24), "needs [96, 16]"),
        (lambda c: c["model"].update(hidden_size="16"), "hidden_size must be an integer"),
        (lambda c: c["model"].update(pooling=3), "pooling must be a string"),
        (lambda c: c["model"].update(embedding_dim=8), "embedding_dim is 8"),
        (lambda c: c["model"].update(bidirectional=False), "bidirectional False"),
        (lambda c: c.pop("classes"), "lacks model/classes/vocab_size"),
        (lambda c: c.update(model=[1]), "'model' is not an object"),
        (lambda c: c["model"].update(tokenizer={"vocab_size": "many"}), "vocab_size must be"),
        (lambda c: c["model"]["tokenizer"].update(casing=1), "unknown tokenizer setting 'casing'"),
        (lambda c: c.update(extra=1), "unknown text model config fields"),
    ],
)
def test_load_checks_config_against_weights(trained, tmp_path, edit, expect):
    """Defect 3 (issue 8): a config that disagrees with the weights is refused on load.

    A config listing one class used to load and predict that class with p=1.0.
    """
    path = trained.save(tmp_path / "model")
    _edit_config(path, edit)
    with pytest.raises(LstmkitError) as err:
        TextClassifier.load(path)
    assert expect in str(err.value) and "\n" not in str(err.value)


def test_load_refuses_damaged_tokenizer_and_training_files(trained, tmp_path):
    """Damaged tokenizer.json / training.json give one line, never a traceback (their
    own readers' checks: without the digests, which would name the file first)."""
    path = forget_digests(trained.save(tmp_path / "model"))
    tok = (path / "tokenizer.json").read_bytes()
    (path / "tokenizer.json").write_bytes(b"\xff\xfe" + tok)
    with pytest.raises(LstmkitError, match="not UTF-8"):
        TextClassifier.load(path)
    other = TextTokenizer.train(["alpha beta gamma delta"], trained.config.tokenizer)
    (path / "tokenizer.json").write_text(other.to_json())  # another model's vocabulary
    with pytest.raises(LstmkitError, match="different models"):
        TextClassifier.load(path)
    (path / "tokenizer.json").write_bytes(tok)
    for damaged, expect in [
        (b"\xff{", "UnicodeDecodeError"),
        (b"{not json", "JSONDecodeError"),
        (b"[1, 2]", "'history' list"),
        (b'{"history": 3, "info": {}}', "'history' list"),
    ]:
        (path / "training.json").write_bytes(damaged)
        with pytest.raises(LstmkitError, match=r"training\.json") as err:
            TextClassifier.load(path)
        assert expect in str(err.value)
    (path / "training.json").unlink()  # the history is optional: the model still loads
    loaded = TextClassifier.load(path)
    assert loaded.history == [] and loaded.predict(["loved it"]) == trained.predict(["loved it"])


def test_fit_refuses_mismatched_lengths_and_bare_strings():
    """Defect 3: 300 texts with 295 labels used to train on 295 without a word."""
    texts, labels = make_texts(30)
    with pytest.raises(LstmkitError, match="30 texts but 25 labels"):
        TextClassifier(**SMALL).fit(texts, labels[:25], progress=False)
    with pytest.raises(LstmkitError, match="30 texts but 31 labels"):
        TextClassifier(**SMALL).fit(texts, [*labels, "pos"], progress=False)
    with pytest.raises(LstmkitError, match="validation data: 2 texts but 1 labels"):
        TextClassifier(**SMALL).fit(texts, labels, val_texts=["a", "b"], val_labels=["pos"])
    with pytest.raises(LstmkitError, match="single str"):
        TextClassifier(**SMALL).fit("a text", ["pos"] * 6, progress=False)
    with pytest.raises(LstmkitError, match="val_labels given without val_texts"):
        TextClassifier(**SMALL).fit(texts, labels, val_labels=labels)


def test_evaluate_refuses_mismatched_lengths(trained):
    texts, labels = make_texts(10, seed=3)
    with pytest.raises(LstmkitError, match="10 texts but 9 labels"):
        trained.evaluate(texts, labels[:9])


@pytest.mark.parametrize(
    ("setting", "value", "expect"),
    [
        ("hidden_size", "8", "setting hidden_size must be an integer >= 1, got '8' (str)"),
        ("lr", "fast", "setting lr must be a number > 0, got 'fast' (str)"),
        ("lr", -1.0, "setting lr must be a number > 0, got -1.0"),
        ("lr", float("nan"), "setting lr must be a finite number"),
        ("max_epochs", 2.5, "setting max_epochs must be an integer >= 1, got 2.5 (float)"),
        ("bidirectional", "yes", "setting bidirectional must be true/false"),
        ("dropout", "0.5", "setting dropout must be a number"),
        ("vocab_size", "5000", "setting vocab_size must be an integer"),
        ("max_length", None, "setting max_length must be an integer"),
        ("gradient_clip_val", "1", "gradient_clip_val must be a number >= 0 or None"),
        ("tokenizer", 5, "setting tokenizer must be one of word, bpe, got 5"),
        ("hidden_size", True, "setting hidden_size must be an integer"),
    ],
)
def test_wrong_setting_types_name_the_setting(setting, value, expect):
    """Defect 5 (API): wrong types give a line naming the setting, not a bare TypeError."""
    with pytest.raises(LstmkitError) as err:
        TextClassifier(**{setting: value})
    assert expect in str(err.value)


def test_predict_table_matches_predict_and_proba(trained):
    texts, _ = make_texts(7, seed=12)
    table = trained.predict_table(texts)
    assert list(table.columns) == ["text", "label", "p_neg", "p_pos"]
    assert table["text"].tolist() == texts and table["label"].tolist() == trained.predict(texts)
    np.testing.assert_allclose(table[["p_neg", "p_pos"]].to_numpy(), trained.predict_proba(texts))


def test_non_finite_weights_are_refused_never_output(trained, tmp_path):
    """Defect 3 (issue 8): non-finite outputs are an error, never an output."""
    from safetensors.torch import load_file, save_file

    path = forget_digests(trained.save(tmp_path / "model"))  # the weights' own check
    state = load_file(str(path / "model.safetensors"))
    state["head.bias"] = torch.full_like(state["head.bias"], float("nan"))
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(LstmkitError, match=r"NaN or infinite weights \(head\.bias\)"):
        TextClassifier.load(path)
    broken = TextClassifier.load(trained.save(tmp_path / "ok"))
    with torch.no_grad():
        broken.net.head.bias.fill_(float("inf"))
        broken.net.head.weight.fill_(float("inf"))  # inf - inf = NaN logits
        broken.net.head.bias[0] = -float("inf")
    with pytest.raises(LstmkitError, match="non-finite"):
        broken.predict_proba(["a great film"])
    with pytest.raises(LstmkitError, match="non-finite"):
        broken.evaluate(["a great film"], ["pos"])


def test_config_argument_types():
    cfg = make_config("seed003", hidden_size=8)
    assert TextClassifier(config=cfg.to_dict()).config == cfg
    with pytest.raises(LstmkitError, match="config must be a TextClassifierConfig"):
        TextClassifier(config=["hidden_size", 8])
    with pytest.raises(LstmkitError, match="unknown text classifier setting 'hiden_size'"):
        TextClassifier(config={"hiden_size": 8})


def test_stratified_split_holds_out_a_share_of_every_class() -> None:
    from lstmkit.tasks.text_classification.data import stratified_split

    y = [0] * 10 + [1] * 5 + [2]  # the lone text of class 2 cannot be spared
    train, val = stratified_split(y, 3, 0.2, seed=0)
    assert sorted(train + val) == list(range(16)) and not set(train) & set(val)
    assert train == sorted(train) and val == sorted(val)
    assert [sum(y[i] == c for i in val) for c in range(3)] == [2, 1, 0]  # round(10 * .2), 1
    assert stratified_split(y, 3, 0.2, seed=0) == (train, val)  # seeded
    assert stratified_split(y, 3, 0.0, seed=0) == (list(range(16)), [])


def test_text_data_module_encodes_both_parts_with_the_training_tokenizer() -> None:
    from lstmkit.tasks.text_classification.data import TextData

    cfg = make_config(vocab_size=30, batch_size=4)
    train = (["a good film", "a bad film", "good good", "bad plot", "the film"], [1, 0, 1, 0, 1])
    val = (["a good plot", "unseen words"], [1, 0])
    data = TextData(cfg, ["neg", "pos"], train, val)
    data.setup("fit")
    tokenizer = data.tokenizer
    data.setup("fit")  # a second call changes nothing
    assert data.tokenizer is tokenizer
    reference = TextTokenizer.train(train[0], cfg.tokenizer)  # learnt from training texts only
    assert tokenizer.to_json() == reference.to_json()
    assert data.train_ids == reference.encode(train[0])
    assert data.val_ids == reference.encode(val[0])
    assert data.train_tokens == sum(len(ids) for ids in reference.encode(train[0]))
    batches = list(data.train_dataloader())
    assert sorted(int(label) for b in batches for label in b["labels"]) == [0, 0, 1, 1, 1]
    assert [b["ids"].shape[0] for b in data.val_dataloader()] == [2]
    assert TextData(cfg, ["neg", "pos"], train, ([], [])).val_dataloader() is None
