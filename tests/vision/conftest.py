"""Vision tests run with one intra-op thread: on a small shared CPU, thread barriers cost more than
they gain (measured: ~4x less wall time than two threads for these small convolutions)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
