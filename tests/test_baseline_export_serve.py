"""A `BaselineForecaster` exported, run without torch and served (issue 17, item 1):
``baseline_export``, ``baseline_runtime``, ``baseline_serving`` and the kind's registry
entry, through the API and ``lstmkit export`` / ``predict`` / ``serve``.

References: `BaselineForecaster.predict` on the saved model (the runtime's and the
server's tables must equal it within float32 rounding), NLinear and DLinear forecasts
computed by hand on a tiny series with weights set by hand, the real export.json damaged
field by field, and the CLI's exit status and stderr.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from test_cli_forecast import run

from lstmkit import kinds, runtime
from lstmkit.errors import LstmkitError
from lstmkit.serving.app import create_app
from lstmkit.tasks.forecasting.baseline_model import BaselineForecaster
from lstmkit.tasks.forecasting.linear import LinearMap

SRC = str(Path(__file__).resolve().parents[1] / "src")
GRAPHED = ("naive", "snaive", "nlinear", "dlinear")


def _panel() -> pd.DataFrame:
    """Three monthly series of different levels and scales (seasonal, with a trend)."""
    parts = []
    for i, (level, amp, n) in enumerate([(50, 10, 96), (500, 80, 84), (-3, 0.5, 90)]):
        t = np.arange(n)
        y = level + amp * np.sin(2 * np.pi * t / 12) + 0.05 * amp * t + np.cos(t) * amp / 10
        months = pd.date_range("2001-01-01", periods=n, freq="MS")
        parts.append(pd.DataFrame({"id": f"s{i}", "month": months, "y": y}))
    return pd.concat(parts, ignore_index=True)


def _close(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """The same table but for float32 rounding of the forecasts (NaN where NaN)."""
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got.drop(columns="forecast"), want.drop(columns="forecast"))
    g, w = got["forecast"].to_numpy(), want["forecast"].to_numpy()
    assert (np.isnan(g) == np.isnan(w)).all()
    ok = ~np.isnan(w)
    np.testing.assert_allclose(g[ok], w[ok], rtol=2e-6, atol=2e-6 * np.abs(w[ok]).max())
    assert got.attrs.get("n/a") == want.attrs.get("n/a")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Any]:
    """Each exportable baseline fitted on the panel, saved, and exported into its folder;
    ets saved (not exported)."""
    root = tmp_path_factory.mktemp("baselines")
    df = _panel()
    out: dict[str, Any] = {"root": root, "df": df}
    for name in GRAPHED:
        b = BaselineForecaster(name, horizon=6, window=24).fit(df, "y", time_col="month",
                                                               id_col="id")  # fmt: skip
        b.save(root / name)
        kind, folder = kinds.get("baseline_forecaster"), root / name / "onnx"
        assert kind.export(BaselineForecaster.load(root / name), folder) == folder
        out[name] = b
    ets = BaselineForecaster("ets", horizon=6).fit(df, "y", time_col="month", id_col="id")
    ets.save(root / "ets")
    out["ets"] = ets
    return out


# ---------------------------------------------------------------------- export + runtime
@pytest.mark.parametrize("name", GRAPHED)
def test_the_export_forecasts_as_the_baseline(saved, name):
    """After the data, from new histories (one series the fit did not see, one too short
    for the window or season: n/a with the same reason), and torch-free."""
    b, df = saved[name], saved["df"]
    p = runtime.load(saved["root"] / name)  # the model folder holding onnx/
    assert (p.kind, p.backend) == ("baseline_forecaster", "onnx")
    assert p.info["baseline"] == name and p.info["horizon"] == 6
    _close(p.predict(), b.predict())
    recent = df.groupby("id").head(60)
    new = recent[recent["id"] == "s1"].assign(id="new", y=lambda d: d["y"] * 3 + 7)
    short = recent[recent["id"] == "s2"].head(10).assign(id="short")
    history = pd.concat([recent, new, short], ignore_index=True)
    want = b.predict(history)
    if name in ("snaive", "nlinear", "dlinear"):  # 10 points: under a season / a window
        assert want.loc[want["id"] == "short", "forecast"].isna().all()
        assert "short" in want.attrs["n/a"]
    _close(p.predict(history), want)
    with pytest.raises(LstmkitError, match="reads the target alone"):
        p.predict(future=history)


def test_the_export_runs_where_importing_torch_fails(saved):
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from lstmkit import runtime\n"
        f"p = runtime.load({str(saved['root'] / 'dlinear' / 'onnx')!r})\n"
        "print(p.predict()['forecast'].round(6).tolist())\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    got = np.array(json.loads(done.stdout))
    np.testing.assert_allclose(got, saved["dlinear"].predict()["forecast"], rtol=1e-5)


def _tiny(name: str, tmp_path: Path) -> tuple[BaselineForecaster, Path]:
    """A 12-point series ending 12, 14, 18, fitted with window 3, horizon 2, season 2; the
    linear maps' weights and the series' scale (mean 10, spread 2) then set by hand."""
    y = [10, 11, 9, 12, 10, 13, 11, 12, 10, 12, 14, 18]
    df = pd.DataFrame({"t": range(12), "y": np.array(y, dtype=float)})
    b = BaselineForecaster(name, horizon=2, window=3, season=2).fit(df, "y", time_col="t")
    if name == "nlinear":
        w = {"weight": [[0.5, 0], [0, 1], [0.25, -1]], "bias": [0.1, -0.2]}
        b.baselines.linear[name] = LinearMap(name, {k: np.array(v) for k, v in w.items()}, 0.0)
    if name == "dlinear":
        w = {"trend_weight": [[0, 0], [0, 0], [1, 0]],
             "remainder_weight": [[0, 3], [0, 0], [3, 0]], "bias": [0, 0.5]}  # fmt: skip
        b.baselines.linear[name] = LinearMap(name, {k: np.array(v) for k, v in w.items()}, 0.0)
    b.baselines.scale["0"] = (10.0, 2.0)
    b.save(tmp_path / name)
    return b, b.export_onnx(tmp_path / f"{name}-onnx")


#: by hand, from the last values 12, 14, 18 (standardised: 1, 2, 4):
#: nlinear: z - last = (-3, -2, 0); y = (-1.5 + 0.1 + 4, -2 - 0.2 + 4) = (2.6, 1.8) -> *2 + 10
#: dlinear (kernel 3, the ends repeated): trend (4/3, 7/3, 10/3), remainder (-1/3, -1/3, 2/3);
#: y = (10/3 + 3 * 2/3, 3 * -1/3 + 0.5) = (16/3, -0.5) -> *2 + 10
BY_HAND = {"naive": [18, 18], "snaive": [14, 18], "nlinear": [15.2, 13.6], "dlinear": [62 / 3, 9]}


@pytest.mark.parametrize("name", GRAPHED)
def test_forecasts_computed_by_hand_on_a_tiny_series(name, tmp_path):
    b, folder = _tiny(name, tmp_path)
    np.testing.assert_allclose(b.predict()["forecast"], BY_HAND[name], rtol=1e-12)
    p = runtime.load(folder)
    got = p.predict()
    np.testing.assert_allclose(got["forecast"], BY_HAND[name], rtol=1e-6)
    assert got["t"].tolist() == [12, 13]
    # from a history the fit did not see: standardised by its own mean and spread
    hist = pd.DataFrame({"t": range(5), "y": [3.0, 1, 2, 4, 7]})
    _close(p.predict(hist), b.predict(hist))


def test_the_graph_holds_the_decomposition(saved):
    """The graph computes NLinear's shift and DLinear's trend itself: fed raw windows it
    equals the fitted map's own arithmetic (`LinearMap.predict`) on windows it never saw."""
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    for name in ("nlinear", "dlinear"):
        m = saved[name].baselines.linear[name]
        sess = ort.InferenceSession(str(saved["root"] / name / "onnx" / "model.onnx"))
        x = rng.normal(size=(5, m.window)) + rng.normal(size=(5, 1)) * 3
        got = sess.run(["forecast"], {"x": x.astype(np.float32)})[0]
        np.testing.assert_allclose(got, m.predict(x), rtol=1e-4, atol=1e-4)


def test_statistical_baselines_are_refused_in_one_line(saved, tmp_path, capsys):
    ets = saved["ets"]
    with pytest.raises(LstmkitError, match="ets cannot be exported to ONNX: it is a statistical"):
        ets.export_onnx(tmp_path / "x")
    assert not (tmp_path / "x").exists()
    code, _, err = run(["export", "--model", str(saved["root"] / "ets")], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ets cannot be exported")
    assert "lstmkit serve --model DIR" in err
    assert not (saved["root"] / "ets" / "onnx").exists()


def test_a_snaive_without_a_season_is_refused(tmp_path):
    df = pd.DataFrame({"t": range(30), "y": np.arange(30.0)})
    b = BaselineForecaster("snaive", horizon=3).fit(df, "y", time_col="t")
    with pytest.raises(LstmkitError, match="has no season"):
        b.export_onnx(tmp_path / "x")


# ---------------------------------------------------------------------- hostile exports
def _damaged(saved: dict[str, Any], tmp_path: Path, edit: Any, name: str = "nlinear") -> Path:
    folder = tmp_path / "a" / "export"
    shutil.copytree(saved["root"] / name / "onnx", folder)
    meta = json.loads((folder / "export.json").read_text())
    edit(meta, folder)
    (folder / "export.json").write_text(json.dumps(meta))
    return folder


def _set(path: str, value: Any) -> Any:
    def edit(meta: dict, folder: Path) -> None:
        *keys, last = path.split(".")
        node = meta
        for key in keys:
            node = node[key] if not isinstance(node, list) else node[int(key)]
        node[last] = value

    return edit


def _graph_outside(meta: dict, folder: Path) -> None:
    shutil.copy(folder / "model.onnx", folder.parent.parent / "outside-model.onnx")
    meta["graph"] = "../../outside-model.onnx"


def _graph_absolute(meta: dict, folder: Path) -> None:
    meta["graph"] = str((folder / "model.onnx").resolve())


def _graph_link_out(meta: dict, folder: Path) -> None:
    target = folder.parent.parent / "outside-model.onnx"
    shutil.copy(folder / "model.onnx", target)
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to(target)


def _graph_of_dlinear(saved: dict[str, Any]) -> Any:
    def edit(meta: dict, folder: Path) -> None:
        shutil.copy(saved["root"] / "naive" / "onnx" / "model.onnx", folder / "model.onnx")

    return edit


HOSTILE = {
    "baseline ets": (_set("baseline", "ets"), "baseline must be one of"),
    "baseline disagrees with config": (_set("baseline", "dlinear"), "config baseline"),
    "window a bool": (_set("window", True), "window must be an integer"),
    "window a float": (_set("window", 24.0), "window must be an integer"),
    "window 1 for nlinear": (_set("window", 1), "window must be >= 2"),
    "horizon 0": (_set("horizon", 0), "horizon must be >= 1"),
    "horizon disagrees with config": (_set("horizon", 7), "config horizon 6 differs"),
    "season 1": (_set("season", 1), "season must be >= 2"),
    "config unknown key": (_set("config.extra", 1), "config must hold"),
    "config bad horizon": (_set("config.horizon", -1), "config: invalid baseline setting"),
    "scale spread 0": (_set("scale.s0", [1.0, 0.0]), "scale of series 's0'"),
    "scale a string": (_set("scale.s0", "big"), "scale of series 's0'"),
    "context too long": (_set("context.s0", [1.0] * 25), "context of series 's0'"),
    "context not finite": (_set("context.s0", [1e400] * 24), "context of series 's0'"),
    "context names another series": (_set("context.zz", [1.0]), "name the same series"),
    "data freq": (_set("data.freq", "fortnightly"), "not a pandas frequency"),
    "data tz": (_set("data.tz", "Mars/Olympus"), "not a time zone"),
    "data times": (_set("data.last_times.s0", ["yesterday"]), "last_times of series 's0'"),
    "data missing field": (lambda m, f: m["data"].pop("freq"), "data must hold"),
    "scale names another series": (_set("scale", {"zz": [0.0, 1.0]}), "scale and context"),
    "unknown field": (_set("extra", 1), "unknown fields"),
    "missing field": (lambda m, f: m.pop("scale"), "missing fields"),
    "graph outside (..)": (_graph_outside, "points outside the export folder"),
    "graph absolute": (_graph_absolute, "points outside the export folder"),
    "graph a link out": (_graph_link_out, "a link leading outside"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_damaged_export_is_one_line(saved, tmp_path, case):
    edit, message = HOSTILE[case]
    folder = _damaged(saved, tmp_path, edit)
    with pytest.raises(LstmkitError) as info:
        runtime.load(folder)
    text = str(info.value)
    assert message in text and "\n" not in text, text
    assert "export.json" in text or "model.onnx" in text


def test_another_baselines_graph_does_not_match_the_description(saved, tmp_path):
    folder = _damaged(saved, tmp_path, _graph_of_dlinear(saved))
    with pytest.raises(LstmkitError, match=r"model\.onnx does not match export\.json's checksum"):
        runtime.load(folder)
    swap = _graph_of_dlinear(saved)  # an export written before checksums: the graph check

    def unchecked(meta: dict, folder: Path) -> None:
        del meta["checksums"]
        swap(meta, folder)

    with pytest.raises(LstmkitError, match="does not match its graph"):
        runtime.load(_damaged(saved, tmp_path / "old", unchecked))
    folder = _damaged(saved, tmp_path / "b", lambda m, f: None)  # the same copy, undamaged
    _close(runtime.load(folder).predict(), saved["nlinear"].predict())


# ---------------------------------------------------------------------- serving
def _records(df: pd.DataFrame) -> list[dict]:
    return [
        {k: (v.strftime("%Y-%m-%d") if isinstance(v, pd.Timestamp) else v) for k, v in r.items()}
        for r in df.to_dict("records")
    ]


def _answer_equals(got: dict, want: pd.DataFrame) -> None:
    assert got["horizon"] == 6 and len(got["forecast"]) == len(want)
    table = pd.DataFrame(got["forecast"])
    assert list(table.columns) == list(want.columns)
    assert table["id"].tolist() == want["id"].tolist()
    assert table["month"].tolist() == [t.strftime("%Y-%m-%d") for t in want["month"]]
    np.testing.assert_allclose(table["forecast"], want["forecast"], rtol=2e-6)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("name", ["snaive", "dlinear"])
def test_the_server_answers_as_the_api(saved, name, backend):
    b, df = saved[name], saved["df"]
    c = TestClient(create_app(saved["root"] / name, backend=backend))
    info = c.get("/model").json()
    assert info["kind"] == "baseline_forecaster" and info["backend"] == backend
    assert info["baseline"] == name and info["season"] == 12 and info["horizon"] == 6
    assert info["window"] == (12 if name == "snaive" else 24)
    assert info["min_rows"] == (12 if name == "snaive" else 24)  # its season, its window
    assert info["history_columns"] == ["month", "id", "y"] and info["quantiles"] == []
    _answer_equals(c.post("/predict").json(), b.predict())
    fewest = df.groupby("id").tail(info["min_rows"])
    assert c.post("/predict", json={"history": _records(fewest)}).status_code == 200
    short = df.groupby("id").tail(info["min_rows"] - 1)
    assert c.post("/predict", json={"history": _records(short)}).status_code == 422
    recent = df.groupby("id").head(50)
    r = c.post("/predict", json={"history": _records(recent)})
    assert r.status_code == 200, r.text
    _answer_equals(r.json(), b.predict(recent))


def test_an_ets_folder_is_served(saved):
    c = TestClient(create_app(saved["root"] / "ets"))
    info = c.get("/model").json()
    assert info["backend"] == "torch" and info["min_rows"] == 24  # two seasons of 12
    recent = saved["df"][saved["df"]["id"] == "s0"].head(48)
    r = c.post("/predict", json={"history": _records(recent)})
    assert r.status_code == 200, r.text
    _answer_equals(r.json(), saved["ets"].predict(recent))


BAD = {
    "too short for the window": (
        lambda df: {"history": _records(df.head(5))},
        "dlinear cannot forecast series 's0': 5 points, shorter than its window (24)",
    ),
    "a future": (
        lambda df: {"history": _records(df), "future": [{"month": "2010-01-01"}]},
        "reads the target alone; leave out 'future'",
    ),
    "no target": (lambda df: {"history": [{"month": "2001-01-01", "id": "s0"}]}, "'y'"),
    "an unknown field": (lambda df: {"histories": []}, "unknown field"),
    "a text value": (lambda df: {"history": [{"month": "2001-01-01", "y": [1]}]}, "history[0]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_requests_get_a_one_line_4xx(saved, case):
    body, message = BAD[case]
    c = TestClient(create_app(saved["root"] / "dlinear"))
    df = saved["df"][saved["df"]["id"] == "s0"].head(40)
    r = c.post("/predict", json=body(df))
    assert 400 <= r.status_code < 500, r.text
    assert message in r.json()["detail"] and "\n" not in r.json()["detail"]


def test_a_non_finite_number_is_refused(saved):
    c = TestClient(create_app(saved["root"] / "naive" / "onnx"))
    body = '{"history": [{"month": "2001-01-01", "id": "s0", "y": NaN}]}'
    r = c.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "finite" in r.json()["detail"]


# ---------------------------------------------------------------------- the CLI
def test_cli_export_then_predict_and_serve(saved, tmp_path, capsys):
    from test_serve import Server

    model = tmp_path / "m"
    shutil.copytree(saved["root"] / "nlinear", model, ignore=shutil.ignore_patterns("onnx"))
    code, out, err = run(["export", "--model", str(model)], capsys)
    assert code == 0, err
    assert "exported the baseline forecaster to" in out
    want = saved["nlinear"].predict()
    for source, csv in ((model, "saved.csv"), (model / "onnx", "onnx.csv")):
        code, out, err = run(["predict", "--model", str(source), "-o", str(tmp_path / csv)],
                             capsys)  # fmt: skip
        assert code == 0, err
        got = pd.read_csv(tmp_path / csv, parse_dates=["month"])
        got.attrs["n/a"] = {}
        _close(got, want.assign(month=pd.to_datetime(want["month"])))
    code, _, err = run(["predict", "--model", str(model / "onnx"), "--future", "x.csv"], capsys)
    assert code == 2 and err.count("\n") == 1 and "reads the target alone" in err
    server = Server(model / "onnx")
    try:
        answer = server.client.post("/predict").json()
        assert server.client.get("/model").json()["baseline"] == "nlinear"
    finally:
        server.stop()
    _answer_equals(answer, want)
    assert all(math.isfinite(r["forecast"]) for r in answer["forecast"])


def test_cli_predict_refuses_a_model_that_does_not_forecast(tmp_path, capsys):
    folder = tmp_path / "clf"
    folder.mkdir()
    meta = {"lstmkit_version": "0.1.0", "kind": "text_classifier", "config": {}}
    (folder / "config.json").write_text(json.dumps(meta))
    code, _, err = run(["predict", "--model", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: {folder} holds a text classifier, not a forecaster")
