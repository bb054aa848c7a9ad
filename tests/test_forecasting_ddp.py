"""A 2-process DDP fit of a Forecaster on CPU (Lightning's subprocess launcher, gloo).

Lightning's ``ddp`` strategy re-runs the launching script for every extra rank,
so the fit runs in a small script started as a subprocess; each rank writes its
final weights and the test checks both ranks ended with the same model.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, pandas as pd
    from safetensors.torch import save_file
    from lstmkit import Forecaster

    out = sys.argv[1]
    t = np.arange(60)
    df = pd.DataFrame({"month": pd.date_range("2000-01-01", periods=60, freq="MS"),
                       "y": 50 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)})
    f = Forecaster(horizon=6, window=12, hidden_size=8, max_epochs=4, lr=1e-2, batch_size=8,
                   accelerator="cpu", devices=2, strategy="ddp", progress=False)
    f.fit(df, target="y", time_col="month")
    import torch.distributed as dist
    # the fit tears down the process group it made (gloo aborts at exit otherwise)
    assert not dist.is_initialized(), "process group left alive after fit"
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    state = {k: v.contiguous() for k, v in f.net.net.state_dict().items()}
    save_file(state, os.path.join(out, f"rank{rank}.safetensors"))
    if rank == 0:
        f.save(os.path.join(out, "model"))
        r = f.fit_result
        json.dump({"world_size": r.world_size, "epochs": r.epochs_run,
                   "history": r.history}, open(os.path.join(out, "result.json"), "w"))
    """
)


def _run(code: str, tmp_path: Path) -> None:
    """Run ``code`` as a script in ``tmp_path`` (its first argument), one thread a rank;
    it must succeed."""
    script = tmp_path / "ddp_script.py"
    script.write_text(code)
    env = os.environ | {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-1500:], proc.stderr[-3000:])


def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    _run(SCRIPT, tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world_size"] == 2 and result["epochs"] == 4
    assert all("val_loss" in row and "train_loss" in row for row in result["history"])
    w0 = load_file(str(tmp_path / "rank0.safetensors"))
    w1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert w0.keys() == w1.keys()
    for k in w0:  # gradients were all-reduced: both ranks hold the same weights
        torch.testing.assert_close(w0[k], w1[k])
    from lstmkit import Forecaster

    loaded = Forecaster.load(tmp_path / "model")
    assert len(loaded.predict()) == 6


PANEL = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, pandas as pd
    from lstmkit import Forecaster

    t = np.arange(50)
    df = pd.DataFrame({"id": np.repeat([f"s{k:02d}" for k in range(30)], 50),
                       "t": np.tile(t, 30),
                       "y": np.concatenate([10 + k + np.sin(t / 3) for k in range(30)])})
    # 30 series, more than 5 batches of 4 hold: an epoch takes one window of every series
    # and validation one fixed window of every series (a list sampler Lightning wraps)
    f = Forecaster(horizon=4, window=8, hidden_size=4, max_epochs=2, batch_size=4,
                   batches_per_epoch=5, accelerator="cpu", devices=2, strategy="ddp",
                   progress=False)
    f.fit(df, "y", time_col="t", id_col="id")
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    r = f.fit_result
    json.dump({"world_size": r.world_size, "history": r.history},
              open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w"))
    """
)


def test_ddp_over_more_series_than_an_epoch_holds(tmp_path: Path) -> None:
    """Both ranks end with the same epoch means (synced over the processes), each epoch
    has its training and validation loss."""
    _run(PANEL, tmp_path)
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["history"] == ranks[1]["history"] and len(ranks[0]["history"]) == 2
    assert all({"train_loss", "val_loss"} <= row.keys() for row in ranks[0]["history"])
