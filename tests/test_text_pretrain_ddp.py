"""A 2-process DDP pretraining run of a text encoder on CPU (Lightning's launcher, gloo).

Each process streams its own share of the corpus (every second text) and must yield the
same number of batches, or the gradient all-reduce would wait forever. The test checks
that the run ends, that both ranks hold the same weights and the same (synchronised)
history, and that rank 0's folder fine-tunes.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from safetensors.torch import load_file

TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[2])
    from safetensors.torch import save_file
    from test_text_pretrain import make_corpus
    from lstmkit import TextClassifier

    out = sys.argv[1]
    clf = TextClassifier(embedding_dim=8, hidden_size=8, bidirectional=True, vocab_size=100)
    # 301 texts: the two shares differ by one text, and so may their piece counts
    clf.pretrain(make_corpus(301, seed=2), max_epochs=2, batch_size=16, lr=0.01, devices=2,
                 progress=False)
    import torch.distributed as dist
    assert not dist.is_initialized(), "process group left alive after pretraining"
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    enc = clf.pretrained
    save_file({k: v.contiguous() for k, v in enc.state.items()},
              os.path.join(out, f"rank{rank}.safetensors"))
    json.dump({"history": enc.history, "world": enc.info.world_size},
              open(os.path.join(out, f"rank{rank}.json"), "w"))
    if rank == 0:
        clf.save_pretrained(os.path.join(out, "encoder"))
    """
)


def test_pretraining_ddp_two_cpu_processes(tmp_path: Path) -> None:
    script = tmp_path / "ddp_pretrain.py"
    script.write_text(SCRIPT)
    env = os.environ | {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(TESTS)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-1500:], proc.stderr[-3000:])
    runs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert runs[0]["world"] == 2 and len(runs[0]["history"]) == 2
    assert runs[0]["history"] == runs[1]["history"]  # losses synchronised across ranks
    w0 = load_file(str(tmp_path / "rank0.safetensors"))
    w1 = load_file(str(tmp_path / "rank1.safetensors"))
    for k in w0:  # gradients were all-reduced: both ranks hold the same weights
        torch.testing.assert_close(w0[k], w1[k])
    from test_text_pretrain import make_labelled

    from lstmkit import TextClassifier

    texts, labels = make_labelled(80)
    clf = TextClassifier(max_epochs=1).fit(
        texts, labels, pretrained=tmp_path / "encoder", progress=False
    )
    assert clf.config.hidden_size == 8
