"""Saved model directories: round trip, atomic replacement, and every refusal on load."""

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lstmkit import __version__
from lstmkit.errors import LstmkitError
from lstmkit.io import (
    atomic_write_text,
    check_model_target,
    load_model_dir,
    save_model_dir,
    staged_dir,
)


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
    digests = {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in ("blob.bin", "model.safetensors", "scaler.json")
    }
    assert meta == {
        "lstmkit_version": __version__,
        "kind": "forecaster",
        "config": {"horizon": 12, "names": ["a", "b"]},
        "files": digests,
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
    with pytest.raises(LstmkitError, match=r"damaged: model\.safetensors changed"):
        load_model_dir(corrupt, "k")
    meta = json.loads((corrupt / "config.json").read_text())
    del meta["files"]  # as saved before the digests: the reader's own check
    (corrupt / "config.json").write_text(json.dumps(meta))
    with pytest.raises(LstmkitError, match="cannot read"):
        load_model_dir(corrupt, "k")

    noweights = save_model_dir(tmp_path / "noweights", kind="k", config={}, state_dict=_state())
    (noweights / "model.safetensors").unlink()
    with pytest.raises(LstmkitError, match=r"no model\.safetensors"):
        load_model_dir(noweights, "k")


def test_a_file_damaged_after_the_save_is_refused_by_name(tmp_path: Path) -> None:
    """One byte changed inside the weights (the file still parses: its header is intact),
    in an extra or in a copied folder, a file cut short or gone, a digest list that is not
    one or that points outside the folder: one line naming the file, nothing loaded. An
    added file is not checked, and a folder saved before the digests loads as it did."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "metrics.csv").write_text("epoch,loss\n0,1.0\n")

    def saved(name: str) -> Path:
        return save_model_dir(
            tmp_path / name, kind="k", config={}, state_dict=_state(),
            extras={"scaler.json": '{"lo": 1.5}'}, folders={"logs": logs},
        )  # fmt: skip

    def flip(path: Path, at: int) -> None:
        data = bytearray(path.read_bytes())
        data[at] ^= 0x01
        path.write_bytes(bytes(data))

    weights = saved("weights") / "model.safetensors"
    flip(weights, len(weights.read_bytes()) - 3)  # in the last tensor's data
    from safetensors.torch import load_file

    assert load_file(str(weights))  # still a readable file: only the digest catches it
    cases = {"weights": "model.safetensors changed", "extra": "scaler.json changed",
             "folder": "logs/metrics.csv changed", "cut": "scaler.json changed",
             "gone": "has no scaler.json; it is incomplete"}  # fmt: skip
    for name, message in cases.items():
        folder = weights.parent if name == "weights" else saved(name)
        if name == "extra":
            flip(folder / "scaler.json", 3)
        elif name == "folder":
            flip(folder / "logs" / "metrics.csv", 0)
        elif name == "cut":
            (folder / "scaler.json").write_text('{"lo"')
        elif name == "gone":
            (folder / "scaler.json").unlink()
        with pytest.raises(LstmkitError, match=re.escape(message)) as info:
            load_model_dir(folder, "k")
        assert "\n" not in str(info.value) and str(folder) in str(info.value)

    fine = saved("fine")
    (fine / "notes.txt").write_text("added by hand")
    assert load_model_dir(fine, "k").read_text("scaler.json") == '{"lo": 1.5}'
    meta = json.loads((fine / "config.json").read_text())
    for listed, message in (([], "not a mapping"), ({"../x": "0"}, "lists '../x'")):
        (fine / "config.json").write_text(json.dumps({**meta, "files": listed}))
        with pytest.raises(LstmkitError, match=re.escape(message)):
            load_model_dir(fine, "k")
    flip(fine / "scaler.json", 3)
    del meta["files"]  # saved before the digests: loads unchecked, as it always did
    (fine / "config.json").write_text(json.dumps(meta))
    assert (
        load_model_dir(fine, "k").read_bytes("scaler.json") == (fine / "scaler.json").read_bytes()
    )


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


def _dead_pid() -> int:
    """The id of a process that has exited (as a killed writer's would be)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_swap_killed_between_renames_is_recovered_on_load(tmp_path: Path) -> None:
    target = save_model_dir(tmp_path / "m", kind="k", config={"v": 1}, state_dict=_state())
    pid = _dead_pid()
    # what a kill between the two renames of a replacement leaves behind
    os.replace(target, tmp_path / f".m.old-{pid}-0a1b2c3d")
    (tmp_path / f".m.tmp-{pid}-0e0f0a0b").mkdir()
    assert not target.exists()
    assert load_model_dir(target, "k").config == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # backup restored, temp cleaned


def test_staged_dir_replaces_as_a_unit_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_dir(out) as stage:
        (stage / "a.csv").write_text("1\n")
        (stage / "b.csv").write_text("2\n")
    with pytest.raises(RuntimeError), staged_dir(out) as stage:
        (stage / "a.csv").write_text("changed\n")
        raise RuntimeError("crash after writing part of the output")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]
    assert (out / "a.csv").read_text() == "1\n"
    with staged_dir(out) as stage:
        (stage / "c.csv").write_text("3\n")
    assert [p.name for p in out.iterdir()] == ["c.csv"]  # no stale files from the last run
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stale_temp_folders_of_dead_writers_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / f".out.tmp-{_dead_pid()}-12345678"
    stale.mkdir()
    mine = tmp_path / f".out.tmp-{os.getpid()}-87654321"  # a live writer's: kept
    mine.mkdir()
    with staged_dir(tmp_path / "out"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", mine.name])


def test_outputs_get_permissions_from_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        f = atomic_write_text(tmp_path / "a.csv", "x\n")
        m = save_model_dir(tmp_path / "m", kind="k", config={}, state_dict=_state())
        with staged_dir(tmp_path / "out") as stage:
            (stage / "x").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE(m.stat().st_mode) == 0o755
    assert stat.S_IMODE((m / "config.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


@pytest.fixture(scope="module")
def classifier_with_baseline():
    """A tiny fitted TextClassifier, with its bag-of-words baseline."""
    from lstmkit import TextClassifier

    words = ["good", "bad", "film", "plot", "fine", "dull"]
    texts = [" ".join(words[i % 6 : i % 6 + 3]) for i in range(24)]
    labels = ["pos" if "good" in t or "fine" in t else "neg" for t in texts]
    clf = TextClassifier(embedding_dim=4, hidden_size=4, max_epochs=1, val_fraction=0.25)
    return clf.fit(texts, labels, progress=False)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_weights_follow_the_umask_like_every_other_file(
    tmp_path: Path, classifier_with_baseline, umask, mode
) -> None:
    """safetensors wrote every *.safetensors (model, baseline, pretrained encoder: all
    through these two writers) 0600 whatever the umask; now they are 0666 & ~umask."""
    clf = classifier_with_baseline
    old = os.umask(umask)
    try:
        plain = save_model_dir(tmp_path / "m", kind="k", config={}, state_dict=_state())
        text = clf.save(tmp_path / "text")
    finally:
        os.umask(old)
    files = [p for folder in (plain, text) for p in folder.rglob("*") if p.is_file()]
    weights = {str(p.relative_to(tmp_path)) for p in files if p.suffix == ".safetensors"}
    assert weights == {
        "m/model.safetensors", "text/model.safetensors", "text/baseline/baseline.safetensors"
    }  # fmt: skip
    assert {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        str(p.relative_to(tmp_path)): oct(mode) for p in files
    }


def test_model_of_another_kind_is_not_replaced(tmp_path: Path) -> None:
    target = save_model_dir(tmp_path / "m", kind="forecaster", config={"v": 1}, state_dict=_state())
    with pytest.raises(LstmkitError, match="holds a 'forecaster' model, which would be lost"):
        check_model_target(target, "text_classifier")
    with pytest.raises(LstmkitError, match="holds a 'forecaster' model"):
        save_model_dir(target, kind="text_classifier", config={}, state_dict=_state())
    assert load_model_dir(target, "forecaster").config == {"v": 1}


def test_atomic_write_refuses_a_folder_and_unwritable_places(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(LstmkitError, match="is a folder; give a file name"):
        atomic_write_text(tmp_path / "d", "x")
    (tmp_path / "f").write_text("")
    with pytest.raises(LstmkitError, match=r"cannot write .*; choose a location you can write"):
        atomic_write_text(tmp_path / "f" / "a.csv", "x")
    with pytest.raises(LstmkitError, match="cannot write"), staged_dir(tmp_path / "f" / "out"):
        pass


def test_check_writable_probes_the_nearest_existing_folder(tmp_path, unwritable_dir):
    from lstmkit.io import check_writable

    assert check_writable(tmp_path / "new" / "deeper", "--out") == tmp_path
    assert not (tmp_path / "new").exists()  # nothing created, no probe left behind
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(LstmkitError, match=r"--out: .* is a file, not a folder"):
        check_writable(tmp_path / "f" / "sub", "--out")
    with pytest.raises(LstmkitError, match="--output: cannot write in"):
        check_writable(unwritable_dir / "x", "--output")


def test_model_folders_are_read_and_checked_without_torch(tmp_path):
    """`lstmkit.io` imports no torch: a model folder's config.json is read and checked
    (its kind, the version that wrote it) and a save target checked where torch is absent;
    only the weights need it."""
    saved = save_model_dir(tmp_path / "m", kind="k", config={"a": 1}, state_dict=_state())
    newer = tmp_path / "newer"
    shutil.copytree(saved, newer)
    meta = json.loads((newer / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps(meta | {"lstmkit_version": "99.1"}))
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from lstmkit.errors import LstmkitError\n"
        "from lstmkit.io import check_model_target, read_model_meta\n"
        f"print(read_model_meta({str(saved)!r})['kind'])\n"
        f"check_model_target({str(saved)!r}, 'k')\n"
        f"try: read_model_meta({str(newer)!r})\n"
        "except LstmkitError as err: print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    kind, refused = done.stdout.splitlines()
    assert kind == "k"
    assert refused == (
        f"{newer} was saved by lstmkit 99.1, which this lstmkit {__version__} cannot read; "
        "upgrade lstmkit or save the model again"
    )
