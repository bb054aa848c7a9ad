"""Suite-wide settings: the models under test are tiny, and CI has 2 shared cores.

One intra-op thread is the fastest setting for such models and keeps the suite
immune to a busy machine (with 2 threads on 2 shared cores a training step was
measured ~30x slower); passive OpenMP waiting avoids busy-spinning threads in
subprocesses the tests start.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
