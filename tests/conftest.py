"""Suite-wide settings: the models under test are tiny, and CI has 2 shared cores.

One intra-op thread is the fastest setting for such models and keeps the suite
immune to a busy machine (with 2 threads on 2 shared cores a training step was
measured ~30x slower); passive OpenMP waiting avoids busy-spinning threads in
subprocesses the tests start.

CPU features: a test marked ``native_bf16`` needs a CPU with native bfloat16 and is
skipped elsewhere, by lstmkit's own run-time check, with the reason shown (``-ra``). The
``cpu_fallback`` fixture makes lstmkit behave as on a CPU without oneDNN products or
native bf16 (``LSTMKIT_CPU_FALLBACK=1``); CI also reruns the nn and variant tests with
that variable set for the whole run, so the fallback path is exercised on every machine.
"""

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

from lstmkit.nn import cpu


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "native_bf16: needs a CPU with native bfloat16 (skipped elsewhere)"
    )


def pytest_collection_modifyitems(config, items):
    if cpu.native_bf16():
        return
    skip = pytest.mark.skip(reason=f"needs native bf16: {cpu.bf16_unsupported_reason()}")
    for item in items:
        if "native_bf16" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cpu_fallback():
    """lstmkit as on a CPU without oneDNN products or native bf16, for one test."""
    before = os.environ.get(cpu.FALLBACK_ENV)
    os.environ[cpu.FALLBACK_ENV] = "1"
    cpu.refresh()
    yield cpu.capabilities()
    if before is None:
        del os.environ[cpu.FALLBACK_ENV]
    else:
        os.environ[cpu.FALLBACK_ENV] = before
    cpu.refresh()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder in which nothing can be created: a 0555 folder, or for root (whom
    permission bits do not stop) /sys, which the kernel keeps read-only."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o555)
        yield folder
        folder.chmod(0o755)
        return
    try:
        tempfile.TemporaryDirectory(dir="/sys").cleanup()
    except OSError:
        yield Path("/sys")
        return
    pytest.skip("no folder here that root cannot write into")


@pytest.fixture
def kill_at_first_checkpoint():
    """``kill(argv, checkpoint_dir)``: start the command ``argv``, SIGKILL it as soon as
    ``checkpoint_dir/last.ckpt`` exists, and check it was killed, not finished."""

    def kill(argv: list[str], checkpoint_dir: Path) -> None:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (checkpoint_dir / "last.ckpt").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL  # killed, not finished

    return kill


def forget_digests(folder: Path) -> Path:
    """Drop the file digests from a saved model folder's config.json, as in a folder saved
    before them, so that a test that damages one file reaches that file's own reader's
    check (the digests would refuse it first). Imported by the tests that need it."""
    import json

    meta = json.loads((Path(folder) / "config.json").read_text())
    meta.pop("files", None)
    (Path(folder) / "config.json").write_text(json.dumps(meta))
    return Path(folder)
