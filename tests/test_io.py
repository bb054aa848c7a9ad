"""Saved model directories: round trip, atomic replacement, and every refusal on load."""

import json
from pathlib import Path

import pytest
import torch

from lstmkit import __version__
from lstmkit.errors import LstmkitError
from lstmkit.io import atomic_write_text, load_model_dir, save_model_dir


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(3, 4, generator=g), "b": torch.arange(5, dtype=torch.float64)}


def test_round_trip(tmp_path: Path) -> None:
    state = _state()
    out = save_model_dir(
        tmp_path / "m",
        kind="forecaster",
        config={"horizon": 12, "names": ["a", "b"]},
        state_dict=state,
        extras={"scaler.json": '{"lo": 1.5}', "blob.bin": b"\x00\x01\xff"},
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "blob.bin",
        "config.json",
        "model.safetensors",
        "scaler.json",
    ]
    meta = json.loads((out / "config.json").read_text())
    assert meta == {
        "lstmkit_version": __version__,
        "kind": "forecaster",
        "config": {"horizon": 12, "names": ["a", "b"]},
    }
    loaded = load_model_dir(out, "forecaster")
    assert loaded.config == {"horizon": 12, "names": ["a", "b"]}
    assert loaded.version == __version__
    assert set(loaded.state_dict) == {"w", "b"}
    for k, v in state.items():
        assert loaded.state_dict[k].dtype == v.dtype
        assert torch.equal(loaded.state_dict[k], v)
    assert json.loads(loaded.read_text("scaler.json")) == {"lo": 1.5}
    assert loaded.read_bytes("blob.bin") == b"\x00\x01\xff"
    with pytest.raises(LstmkitError, match=r"no missing\.json"):
        loaded.read_text("missing.json")


def test_replaces_existing_model_dir_completely(tmp_path: Path) -> None:
    target = tmp_path / "m"
    save_model_dir(target, kind="k", config={"v": 1}, state_dict=_state(), extras={"old.txt": "x"})
    save_model_dir(target, kind="k", config={"v": 2}, state_dict={"z": torch.ones(2)})
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    assert load_model_dir(target, "k").config == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp or backup folders left


def test_failed_save_leaves_previous_model_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "m"
    save_model_dir(target, kind="k", config={"v": 1}, state_dict=_state())
    with pytest.raises(TypeError):
        save_model_dir(target, kind="k", config={"v": object()}, state_dict=_state())
    with pytest.raises(TypeError):  # an extra that is neither text nor bytes fails mid-write
        save_model_dir(target, kind="k", config={"v": 3}, state_dict=_state(), extras={"x": None})
    assert load_model_dir(target, "k").config == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.csv").write_text("1,2\n")
    with pytest.raises(LstmkitError, match="not an lstmkit model directory"):
        save_model_dir(tmp_path / "data", kind="k", config={}, state_dict=_state())
    assert (tmp_path / "data" / "precious.csv").read_text() == "1,2\n"


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "../x", ".hidden"])
def test_reserved_extra_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(LstmkitError, match="reserved"):
        save_model_dir(tmp_path / "m", kind="k", config={}, state_dict={}, extras={name: "x"})


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(LstmkitError, match="does not exist"):
        load_model_dir(tmp_path / "nope", "k")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LstmkitError, match=r"no config\.json"):
        load_model_dir(empty, "k")
    good = save_model_dir(tmp_path / "good", kind="forecaster", config={}, state_dict=_state())
    with pytest.raises(LstmkitError, match="expected a 'text_classifier' model"):
        load_model_dir(good, "text_classifier")

    bad_json = tmp_path / "bad_json"
    bad_json.mkdir()
    (bad_json / "config.json").write_text("{not json")
    with pytest.raises(LstmkitError, match="not valid JSON"):
        load_model_dir(bad_json, "k")

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(LstmkitError, match="not written by lstmkit"):
        load_model_dir(foreign, "k")

    newer = save_model_dir(tmp_path / "newer", kind="k", config={}, state_dict=_state())
    meta = json.loads((newer / "config.json").read_text())
    meta["lstmkit_version"] = "99.0.0"
    (newer / "config.json").write_text(json.dumps(meta))
    with pytest.raises(LstmkitError, match=r"saved by lstmkit 99\.0\.0"):
        load_model_dir(newer, "k")

    corrupt = save_model_dir(tmp_path / "corrupt", kind="k", config={}, state_dict=_state())
    (corrupt / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(LstmkitError, match="cannot read"):
        load_model_dir(corrupt, "k")

    noweights = save_model_dir(tmp_path / "noweights", kind="k", config={}, state_dict=_state())
    (noweights / "model.safetensors").unlink()
    with pytest.raises(LstmkitError, match=r"no model\.safetensors"):
        load_model_dir(noweights, "k")


def test_error_messages_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(LstmkitError) as info:
        load_model_dir(tmp_path / "nope", "k")
    assert "\n" not in str(info.value)


def test_atomic_write_text(tmp_path: Path) -> None:
    p = atomic_write_text(tmp_path / "sub" / "a.csv", "x,y\n1,2\n")
    assert p.read_text() == "x,y\n1,2\n"
    atomic_write_text(p, "new\n")
    assert p.read_text() == "new\n"
    assert [q.name for q in p.parent.iterdir()] == ["a.csv"]
