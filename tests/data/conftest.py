"""Data-pipeline tests run single-threaded: their tensors are small, and on a shared, oversubscribed
machine intra-op threads make small ops up to 100x slower (measured: torch.isin on 45K elements 9 ms on
one thread, 1.3 s on two under load)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
