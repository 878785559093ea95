"""gnnpretrain.hub: registry, offline loading from the shared folder, download + checksum, local files."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import socket
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gnnpretrain import hub
from gnnpretrain.nn import GNN
from gnnpretrain.paths import checkpoints_root

SHARED = checkpoints_root()
needs_shared = pytest.mark.skipif(not (SHARED / "chem" / "gcn_contextpred.pth").is_file(),
                                  reason="reference checkpoints not found (set GNNPRETRAIN_CHECKPOINTS)")


def test_registry_covers_the_published_files():
    names = {e.name for e in hub.list()}
    for s in ("contextpred", "infomax", "edgepred", "masking", "supervised", "supervised_contextpred",
              "supervised_infomax", "supervised_edgepred", "supervised_masking"):
        assert f"gin_{s}" in names and f"bio_gin_{s}" in names
    for t in ("gcn", "graphsage", "gat"):
        assert {f"{t}_contextpred", f"{t}_supervised", f"{t}_supervised_contextpred"} <= names
        assert {f"bio_{t}_masking", f"bio_{t}_supervised_masking"} <= names
    e = hub.get_entry("gin_supervised_contextpred")
    assert e.url == "https://raw.githubusercontent.com/snap-stanford/pretrain-gnns/master/chem/model_gin/supervised_contextpred.pth"
    assert hub.get_entry("bio_gcn_masking").path == "bio/model_architecture/gcn_masking.pth"
    # every entry's architecture builds
    for entry in hub.list():
        GNN(**{**entry.architecture, "emb_dim": 8, "num_layer": 2})
    with pytest.raises(ValueError, match="known names"):
        hub.get_entry("gin_nonsense")


@needs_shared
def test_every_hashed_entry_resolves_to_the_shared_file():
    for entry in hub.list():
        if entry.sha256 is None:
            continue
        path = hub.resolve(entry.name, download=False)
        assert path.parent.parent == SHARED
        assert path.stat().st_size == entry.size


@needs_shared
@pytest.mark.parametrize("name", ["gcn_supervised_contextpred", "graphsage_contextpred", "gat_supervised", "bio_gcn_masking"])
def test_load_from_shared_folder(name):
    entry = hub.get_entry(name)
    gnn = hub.load(name, download=False)
    assert isinstance(gnn, GNN) and not gnn.training
    assert (gnn.gnn_type, gnn.input, gnn.emb_dim) == (entry.gnn_type, "bio" if entry.domain == "bio" else "reference", 300)
    raw = torch.load(SHARED / entry.domain / entry.filename, map_location="cpu", weights_only=True)
    state = gnn.state_dict()
    for key, value in raw.items():
        assert torch.equal(state[key], value), key


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(base_url: str, sha256: str | None = None) -> hub.HubEntry:
    return replace(hub.get_entry("gcn_contextpred"), name="test_gcn", sha256=sha256, size=None, base_url=base_url)


def test_offline_error_names_address_and_folder(tmp_path, monkeypatch):
    entry = _entry(f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setitem(hub.REGISTRY, entry.name, entry)
    monkeypatch.setenv("GNNPRETRAIN_CHECKPOINTS", str(tmp_path / "ckpts"))
    with pytest.raises(hub.CheckpointUnavailableError) as err:
        hub.load(entry.name, cache=tmp_path / "cache", progress=False)
    msg = str(err.value)
    assert entry.url in msg and str(tmp_path / "ckpts" / "chem" / "gcn_contextpred.pth") in msg
    assert not any((tmp_path / "cache").rglob("*.pth*"))


@pytest.fixture
def server(tmp_path):
    """A local HTTP server (thread) serving ``tmp_path/www`` — the real download path without a network."""
    root = tmp_path / "www"
    (root / "chem" / "model_architecture").mkdir(parents=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _served_weights(root: Path, seed: int) -> bytes:
    torch.manual_seed(seed)
    gnn = GNN(num_layer=5, emb_dim=300, gnn_type="gcn")
    path = root / "chem" / "model_architecture" / "gcn_contextpred.pth"
    torch.save(gnn.state_dict(), path)
    return path.read_bytes()


def test_download_records_unknown_hash_then_refuses_a_changed_file(server, tmp_path, monkeypatch):
    root, url = server
    monkeypatch.setenv("GNNPRETRAIN_CHECKPOINTS", str(tmp_path / "empty"))
    cache = tmp_path / "cache"
    data = _served_weights(root, 0)
    entry = _entry(url)
    monkeypatch.setitem(hub.REGISTRY, entry.name, entry)

    gnn = hub.load(entry.name, cache=cache, progress=False)
    assert gnn.gnn_type == "gcn" and Path(gnn.hub_info["path"]).read_bytes() == data
    recorded = json.loads((cache / "hub" / "sha256.json").read_text())
    assert recorded[entry.url] == hashlib.sha256(data).hexdigest()

    # the address now serves other bytes: the second download is refused and removed
    Path(gnn.hub_info["path"]).unlink()
    _served_weights(root, 1)
    with pytest.raises(hub.ChecksumMismatchError, match="was removed"):
        hub.load(entry.name, cache=cache, progress=False)
    assert not any((cache / "hub" / "chem").iterdir())


def test_download_with_wrong_registry_hash_is_refused(server, tmp_path, monkeypatch):
    root, url = server
    monkeypatch.setenv("GNNPRETRAIN_CHECKPOINTS", str(tmp_path / "empty"))
    _served_weights(root, 0)
    entry = _entry(url, sha256="0" * 64)
    monkeypatch.setitem(hub.REGISTRY, entry.name, entry)
    with pytest.raises(hub.ChecksumMismatchError):
        hub.resolve(entry.name, cache=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "hub" / "chem" / "gcn_contextpred.pth").exists()


def test_load_path_reads_pretraining_metadata(tmp_path, data_dir):
    """model.pth of a real pre-training run loads without flags (config.json beside it): GraphSAGE is not
    mistaken for GCN (same parameters), and strategy, corpus and epochs are reported."""
    import pandas as pd

    from gnnpretrain.chem import smiles_to_graph
    from gnnpretrain.data import GraphStore
    from gnnpretrain.strategies import build_strategy
    from gnnpretrain.train.pretrain import pretrain
    from gnnpretrain.train.pretrain_data import make_pretrain_loader

    smiles = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv")["smiles"].iloc[:60]
    store = GraphStore.from_data_list([g for g in map(smiles_to_graph, smiles) if g is not None])
    enc = {"num_layer": 2, "emb_dim": 16, "JK": "last", "drop_ratio": 0.0, "gnn_type": "graphsage", "input": "reference"}
    torch.manual_seed(0)
    strategy = build_strategy("attrmasking", encoder_kwargs=enc)
    run = tmp_path / "run"
    pretrain(strategy, make_pretrain_loader(store, batch_size=30, seed=0), epochs=1, lr=1e-3, device="cpu",
             out_dir=run, progress=False, log=lambda s: None, config={"data": {"dataset": "bbbp[:60]"}})
    meta = hub.read_metadata(run / "model.pth")
    assert meta["strategy"] == "attrmasking" and meta["epochs"] == 1 and meta["encoder"]["gnn_type"] == "graphsage"
    assert meta["corpus"] == {"dataset": "bbbp[:60]"} and meta["featurizer"] == "reference"
    gnn = hub.load(run / "model.pth")
    assert gnn.gnn_type == "graphsage" and gnn.hub_info["strategy"] == "attrmasking"
    for k, v in strategy.encoder.state_dict().items():
        assert torch.equal(gnn.state_dict()[k], v.cpu())
    # a copy without the sidecar: the architecture comes from the weights (+ the file name's hint)
    named = tmp_path / "graphsage_mine.pth"
    named.write_bytes((run / "model.pth").read_bytes())
    assert hub.read_metadata(named) == {} and hub.load(named).gnn_type == "graphsage"


def test_load_refuses_files_that_need_unpickling(tmp_path):
    path = tmp_path / "checkpoint.pth"
    torch.save({"encoder": GNN(num_layer=1, emb_dim=4).state_dict(), "note": object.__new__(_Opaque)}, path)
    with pytest.raises(ValueError, match="refuses to unpickle"):
        hub.load(path)


class _Opaque:
    pass
