"""The registry of model kinds (`lstmkit.kinds`): what it names resolves (without torch
on the ONNX side), kinds that cannot be exported or served say so in one line, and a
third kind, written here as its own module plus one registry line, is saved, exported,
run by `lstmkit.runtime` and served on both backends by code that never names it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from lstmkit import __version__, kinds, runtime
from lstmkit.cli import main
from lstmkit.errors import LstmkitError
from lstmkit.export import export_model, verify, write_export
from lstmkit.io import read_model_meta, save_model_dir
from lstmkit.runtime.meta import Damaged, GraphSpec
from lstmkit.runtime.session import GRAPH_FILE
from lstmkit.serving.app import create_app
from lstmkit.serving.schema import ModelInfo

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cli(capsys, *args: str) -> tuple[int, str]:
    """``lstmkit ARGS`` in this process: (exit status, stderr)."""
    old, sys.argv = sys.argv, ["lstmkit", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------- the registry
def test_every_entry_resolves_and_its_onnx_and_serving_sides_import_no_torch():
    """Each kind's parts exist; the torch-free ones (what serving an ONNX export resolves)
    import in a process where importing torch fails."""
    for name in kinds.names():
        kind = kinds.get(name)
        assert kind.name == name and kind.title
        assert callable(kinds.resolve(kind.estimator).load)
        for ref in (kind.exporter, kind.onnx_predictor, kind.torch_predictor, kind.serving):
            if ref is not None:
                assert kinds.resolve(ref) is not None
        if kind.onnx_predictor is not None:
            assert kind.onnx_predictor_class().kind == name
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from lstmkit import kinds\n"
        "for name in kinds.names():\n"
        "    kind = kinds.get(name)\n"
        "    if kind.exportable:\n"
        "        kind.onnx_predictor_class(), kind.serving_adapter()\n"
        "        kind.torch_predictor_class()  # the class: torch comes with its estimator\n"
        "print('resolved', len(kinds.names()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["resolved", str(len(kinds.names()))]


def test_an_unknown_kind_is_one_line():
    with pytest.raises(LstmkitError, match=r"unknown model kind 'bert'; lstmkit knows forecaster"):
        kinds.get("bert")
    with pytest.raises(LstmkitError, match="unknown model kind"):
        kinds.get(["a", "list"])  # what a damaged JSON file may hold


def _folder(path: Path, kind: str) -> Path:
    """A model folder's config.json saying ``kind`` (nothing else is read before the
    refusal)."""
    path.mkdir()
    meta = {"lstmkit_version": __version__, "kind": kind, "config": {}}
    (path / "config.json").write_text(json.dumps(meta))
    return path


def test_a_pretrained_encoder_is_neither_exported_nor_served(tmp_path, capsys):
    encoder = _folder(tmp_path / "encoder", "text_encoder")
    for args, doing in (
        (["export", "--model"], "exported to ONNX"),
        (["serve", "--model"], "served"),
    ):
        code, err = _cli(capsys, *args, str(encoder))
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"error: a pretrained text encoder cannot be {doing}; it predicts")
        assert "--pretrained" in err  # what to do instead
    assert sorted(p.name for p in encoder.iterdir()) == ["config.json"]


def test_a_folder_of_an_unknown_kind_is_one_line(tmp_path, capsys):
    other = _folder(tmp_path / "other", "bert")
    for args in (["export", "--model"], ["serve", "--model"]):
        code, err = _cli(capsys, *args, str(other))
        assert code == 2 and err.count("\n") == 1, err
        assert f"{other / 'config.json'}: unknown model kind 'bert'; lstmkit knows" in err


# ---------------------------------------------------------------------- a third kind
# Everything a kind needs, in one module (this one): a model that predicts scale x the
# length of each text, its exporter, its ONNX predictor, its PyTorch-side predictor and
# its serving adapter; lstmkit learns of it from one registry line.
KIND = "text_length"


class LengthModel:
    """The estimator: ``predict(texts)`` = scale * len(text)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def predict(self, texts: Sequence[str]) -> list[float]:
        return [self.scale * len(t) for t in texts]

    def save(self, path: Path) -> Path:
        return save_model_dir(path, kind=KIND, config={"scale": self.scale}, state_dict={})

    @classmethod
    def load(cls, path: Path) -> LengthModel:
        return cls(float(read_model_meta(path)["config"]["scale"]))


def export_length(model: LengthModel, out: Path) -> Path:
    """The graph y = scale * x, checked against `LengthModel` by `verify`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def build(tmp: Path) -> tuple[dict[str, Any], dict[str, str]]:
        scale = numpy_helper.from_array(np.array([model.scale], dtype=np.float32), "scale")
        graph = helper.make_graph(
            [helper.make_node("Mul", ["x", "scale"], ["y"])],
            KIND,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
            initializer=[scale],
        )
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        proto.ir_version = 8
        onnx.save(proto, tmp / GRAPH_FILE)
        cases = [{"x": np.array([[0.0], [3.0], [11.0]], dtype=np.float32)}]

        def reference(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            texts = ["a" * int(n) for n in feeds["x"][:, 0]]
            return [np.array(model.predict(texts))[:, None]]

        check = verify(
            tmp / GRAPH_FILE,
            cases,
            reference,
            ["y"],
            lambda feeds: f"batch {len(feeds['x'])}",
        )
        meta = {"inputs": ["x"], "outputs": ["y"], "config": {"scale": model.scale},
                "scale": model.scale, "verification": check}  # fmt: skip
        return meta, {}

    return write_export(out, KIND, build, LengthPredictor.FILES)


class LengthPredictor:
    """The ONNX side (no torch): export.json's ``scale`` field and the graph's shapes."""

    kind = KIND
    backend = "onnx"
    FIELDS = ("scale",)
    FILES = ()

    def __init__(self, folder: Path, meta: dict[str, Any], session: Any) -> None:
        self.session, self.scale = session, meta["scale"]
        self.info = {"kind": KIND, "backend": "onnx", "lstmkit_version": meta["lstmkit_version"]}

    @classmethod
    def check_export(cls, folder: Path, meta: dict[str, Any]) -> None:
        if isinstance(meta["scale"], bool) or not isinstance(meta["scale"], int | float):
            raise Damaged(f"scale must be a number, got {meta['scale']!r}")

    @classmethod
    def graph_spec(cls, meta: dict[str, Any]) -> tuple[GraphSpec, GraphSpec]:
        return {"x": ("tensor(float)", (None, 1))}, {"y": ("tensor(float)", (None, 1))}

    @classmethod
    def probe(cls, meta: dict[str, Any], inputs: GraphSpec) -> dict[str, np.ndarray]:
        return {"x": np.zeros((1, 1), dtype=np.float32)}

    def predict(self, texts: Sequence[str]) -> list[float]:
        x = np.array([[len(t)] for t in texts], dtype=np.float32)
        return self.session.run(["y"], {"x": x})[0][:, 0].tolist()


class TorchLengthPredictor:
    """The saved folder served as it is."""

    kind = KIND
    backend = "torch"

    def __init__(self, path: Path) -> None:
        self.model = LengthModel.load(path)
        self.scale = self.model.scale
        self.info = {"kind": KIND, "backend": "torch", "lstmkit_version": __version__}

    def predict(self, texts: Sequence[str]) -> list[float]:
        return self.model.predict(texts)


class LengthRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str]


class LengthResponse(BaseModel):
    lengths: list[float]


class LengthInfo(ModelInfo):
    scale: float


class LengthServing:
    example = '{"texts": [...]}'
    info_model = LengthInfo
    request_defaults = ()

    def check_defaults(self, pred: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def info(self, pred: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
        return {"scale": pred.scale}

    def add_routes(
        self, app: FastAPI, pred: Any, lock: threading.Lock, defaults: Mapping[str, Any]
    ) -> None:
        @app.post("/predict", response_model=LengthResponse)
        def predict(request: LengthRequest) -> LengthResponse:
            with lock:
                return LengthResponse(lengths=pred.predict(request.texts))


SERVING = LengthServing()
TEXT_LENGTH = kinds.ModelKind(
    name=KIND,
    title="text length model",
    estimator="test_kinds:LengthModel",
    exporter="test_kinds:export_length",
    onnx_predictor="test_kinds:LengthPredictor",
    torch_predictor="test_kinds:TorchLengthPredictor",
    serving="test_kinds:SERVING",
)


def test_a_third_kind_needs_its_own_module_and_one_registry_line(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))  # "test_kinds:..." imports this module
    monkeypatch.setitem(kinds.REGISTRY, KIND, "test_kinds:TEXT_LENGTH")  # the one line
    model = LengthModel(2.5).save(tmp_path / "model")
    assert export_model(model) == (KIND, model / "onnx")  # lstmkit export
    texts = ["ab", "a longer text", ""]
    want = [5.0, 32.5, 0.0]
    assert runtime.load(model).predict(texts) == want
    bad = shutil.copytree(model / "onnx", tmp_path / "bad")  # its own field checks run
    meta = json.loads((bad / "export.json").read_text())
    (bad / "export.json").write_text(json.dumps(meta | {"scale": "big"}))
    with pytest.raises(LstmkitError, match=r"is damaged \(scale must be a number"):
        runtime.load(bad)
    for backend in ("torch", "onnx"):
        with TestClient(create_app(model, backend=backend)) as client:
            health = client.get("/health").json()
            assert health == {"status": "ok", "kind": KIND, "backend": backend}
            info = client.get("/model").json()
            assert (info["kind"], info["backend"], info["scale"]) == (KIND, backend, 2.5)
            got = client.post("/predict", json={"texts": texts})
            assert got.status_code == 200 and got.json() == {"lengths": want}
            bad = client.post("/predict", json={"words": texts})
            assert bad.status_code == 422 and '{"texts": [...]}' in bad.json()["detail"]
