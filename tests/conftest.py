"""Shared fixtures. Tests read real data from the data root (``$GNNPRETRAIN_DATA`` or ../shared/data)
and write processed tensors to the normal cache (``$GNNPRETRAIN_CACHE`` or ~/.cache/gnnpretrain)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gnnpretrain.paths import cache_dir, data_root

# One thread: the tests use small models, where a second thread mostly adds overhead (measured
# 5-10x slower epochs with 2 threads on a busy 2-core machine).
torch.set_num_threads(1)



@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread for every test, restored afterwards: scripts run in-process may pick their own
    thread count, and on a small shared CPU a second spinning thread makes small models several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "moleculenet").is_dir():
        pytest.fail(
            f"real data not found under {root}: set GNNPRETRAIN_DATA to the folder holding moleculenet/, zinc/, chembl/, bio/"
        )
    return root


@pytest.fixture(scope="session")
def cache() -> Path:
    return cache_dir()


@pytest.fixture
def run_script(capsys):
    """Run ``scripts/<name>.py`` in this process through ``run_cli``, as ``python scripts/<name>.py`` runs it.

    Returns a ``CompletedProcess`` with the exit code (0, or ``run_cli``'s 2 for a user error) and the
    captured stdout / stderr; faster than a subprocess, and the same error path a user sees.
    """
    import importlib.util
    import subprocess

    from gnnpretrain.utils import run_cli

    repo = Path(__file__).resolve().parents[1]

    def run(name: str, *args: str) -> subprocess.CompletedProcess:
        spec = importlib.util.spec_from_file_location(f"script_{name}", repo / "scripts" / f"{name}.py")
        cli = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cli)
        capsys.readouterr()
        code = 0
        try:
            run_cli(cli.main, list(args))
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run
