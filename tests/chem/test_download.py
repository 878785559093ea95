"""Data that arrives by itself: the ZINC corpus downloads with a checksum (served here by a local HTTP
server, no test touches the network), a corrupted download is refused, and offline one message says
what to fetch and where. MoleculeNet errors name the file as the README does."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
from pathlib import Path

import pytest

from gnnpretrain.chem import download as dl
from gnnpretrain.chem.corpus import corpus_sources
from gnnpretrain.chem.moleculenet import find_raw_file
from gnnpretrain.paths import DATA_ENV


@pytest.fixture()
def served(tmp_path):
    """A local HTTP server over a folder; yields ``(folder, base_url)``."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 (keep test output clean)
        pass


def _publish_moses(data_dir: Path, folder: Path) -> None:
    """The real MOSES files under their upstream names (train.csv.gz, ...)."""
    for dest, remote in dl.ZINC_REMOTE.items():
        os.symlink(data_dir / "zinc" / dest, folder / remote.filename)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_zinc_downloads_with_checksum_from_its_source(data_dir, served, tmp_path, monkeypatch):
    folder, url = served
    _publish_moses(data_dir, folder)
    monkeypatch.setenv(dl.MOSES_URL_ENV, url)
    root = tmp_path / "data"
    name, files = corpus_sources("zinc", root, progress=False)
    assert name == "zinc" and [f.name for f in files] == list(dl.ZINC_REMOTE)
    for f in files:
        assert f.is_file() and _sha(f) == dl.ZINC_REMOTE[f.name].sha256
    assert not list((root / "zinc").glob(".*.part"))
    # present now: a second call downloads nothing (the server is not even needed)
    for p in folder.iterdir():
        p.unlink()
    assert corpus_sources("zinc", root, progress=False)[1] == files


def test_corrupted_download_is_refused_and_leaves_nothing(data_dir, served, tmp_path, monkeypatch):
    folder, url = served
    bad = bytearray((data_dir / "zinc" / "moses_test.csv.gz").read_bytes())
    bad[100] ^= 0xFF  # same size, other content
    (folder / "test.csv.gz").write_bytes(bytes(bad))
    monkeypatch.setenv(dl.MOSES_URL_ENV, url)
    dest = tmp_path / "zinc" / "moses_test.csv.gz"
    with pytest.raises(dl.ChecksumError, match="sha256 mismatch"):
        dl.fetch(dl.zinc_remote("moses_test.csv.gz"), dest, progress=False)
    assert not dest.exists() and not list(dest.parent.iterdir())


def test_offline_one_message_lists_what_to_fetch_and_where(tmp_path, monkeypatch, served):
    _, url = served
    monkeypatch.setenv(dl.MOSES_URL_ENV, url + "nothing-here/")  # the server answers 404: as good as offline
    root = tmp_path / "data"
    with pytest.raises(FileNotFoundError) as info:
        corpus_sources("zinc", root, progress=False)
    msg = str(info.value)
    assert f"is not in {root / 'zinc'}" in msg and "could not be downloaded" in msg
    for dest, remote in dl.ZINC_REMOTE.items():
        assert f"{dest}  <-  {url}nothing-here/{remote.filename}" in msg
    assert "--data-root" in msg and "python -m gnnpretrain.data" in msg
    # without downloading at all, the same list
    with pytest.raises(FileNotFoundError, match="moses_test_scaffolds.csv.gz  <-"):
        corpus_sources("zinc", root, download=False)


def test_moleculenet_error_names_the_readme_file_and_the_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as info:
        find_raw_file("bbbp", tmp_path, download=False)
    msg = str(info.value)
    assert f"{tmp_path / 'moleculenet' / 'bbbp.csv'} (or bbbp.csv.gz, BBBP.csv" in msg
    assert f"data root {tmp_path} (--data-root)" in msg


def test_data_status_shows_present_missing_and_where(data_dir, tmp_path, capsys, monkeypatch):
    from gnnpretrain.data.__main__ import main

    monkeypatch.delenv(dl.MOSES_URL_ENV, raising=False)
    main(["--data-root", str(data_dir)])
    out = capsys.readouterr().out
    assert "present  moleculenet/bbbp.csv" in out and "present  zinc/moses_train.csv.gz" in out
    main(["--data-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"data root {tmp_path} (--data-root)" in out
    assert "MISSING  moleculenet/bbbp.csv  (looked for bbbp.csv, bbbp.csv.gz, BBBP.csv" in out
    assert "MISSING  zinc/moses_train.csv.gz" in out and dl.ZINC_REMOTE["moses_train.csv.gz"].url in out
    assert "required file(s) missing" in out
