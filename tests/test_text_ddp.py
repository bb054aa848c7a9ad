"""A 2-process DDP fit of a TextClassifier on CPU (Lightning's subprocess launcher, gloo).

Also with adversarial training, whose extra gradient pass runs inside DDP's forward.

Issue 8, defect 6: ``TextClassifier.fit(devices=2)`` failed because Lightning could not
put its distributed sampler into the length-bucketing batch sampler. Lightning's ``ddp``
strategy re-runs the launching script for every extra rank, so the fit runs in a small
script started as a subprocess; each rank writes its final weights and the history, and
the test checks both ranks ended with the same model and the same (synchronised) metrics.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[2])
    from safetensors.torch import save_file
    from test_text_classifier import make_texts
    from lstmkit import TextClassifier

    out = sys.argv[1]
    texts, labels = make_texts(240, seed=1)
    clf = TextClassifier(embedding_dim=8, hidden_size=8, batch_size=16, lr=0.02, max_epochs=3,
                         lr_decay="linear", seed=0, adversarial=float(sys.argv[3]))
    clf.fit(texts, labels, devices=2, progress=False)
    import torch.distributed as dist
    assert not dist.is_initialized(), "process group left alive after fit"
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    state = {k: v.contiguous() for k, v in clf.net.state_dict().items()}
    save_file(state, os.path.join(out, f"rank{rank}.safetensors"))
    json.dump({"history": clf.history, "info": clf.train_info},
              open(os.path.join(out, f"rank{rank}.json"), "w"))
    if rank == 0:
        clf.save(os.path.join(out, "model"))
    """
)


@pytest.mark.parametrize("adversarial", [0.0, 0.05])  # 0.05: a second pass inside each step
def test_text_classifier_ddp_two_cpu_processes(tmp_path: Path, adversarial: float) -> None:
    script = tmp_path / "ddp_text.py"
    script.write_text(SCRIPT)
    env = os.environ | {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(TESTS), str(adversarial)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-1500:], proc.stderr[-3000:])
    runs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(runs[0]["history"]) == 3
    assert runs[0]["history"] == runs[1]["history"]  # metrics synchronised across ranks
    assert all({"train_loss", "val_loss", "val_acc"} <= set(row) for row in runs[0]["history"])
    assert all(("train_adv_loss" in row) == (adversarial > 0) for row in runs[0]["history"])
    w0 = load_file(str(tmp_path / "rank0.safetensors"))
    w1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert w0.keys() == w1.keys()
    for k in w0:  # gradients were all-reduced: both ranks hold the same weights
        torch.testing.assert_close(w0[k], w1[k])
    from lstmkit import TextClassifier

    loaded = TextClassifier.load(tmp_path / "model")
    proba = loaded.predict_proba(["the movie was wonderful", "awful plot"])
    assert proba.shape == (2, 2)
