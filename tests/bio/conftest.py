"""Fixtures for the bio tests: the toy PPI/GO files (bio_toy.py) and a small subsample of the real
STRING human data set, built once per session in a temporary cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from bio_toy import SMALL, write_toy


@pytest.fixture()
def toy(tmp_path) -> dict[str, Path]:
    return write_toy(tmp_path / "toy")


@pytest.fixture(scope="session")
def small_bio(tmp_path_factory, data_dir):
    """1,500 real STRING-human ego-networks (centres sampled at random; neighbourhoods from the full network)."""
    from gnnpretrain.bio import BioEgoNetworks

    return BioEgoNetworks(data_dir, tmp_path_factory.mktemp("biocache"), log=False, **SMALL)

