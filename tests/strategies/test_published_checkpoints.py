"""Hub entries for the GraphCL / GraphMAE releases (and the Mole-BERT file, which is Hu et al.'s
supervised_masking): addresses, the offline error, and strict loading of the official key layout."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest
import torch

from _official import OfficialGNN
from gnnpretrain import hub
from gnnpretrain.paths import checkpoints_root

NEW = {
    "gin_graphcl": "https://raw.githubusercontent.com/Shen-Lab/GraphCL/master/transferLearning_MoleculeNet_PPI/chem/"
                   "models_graphcl/graphcl_80.pth",
    "gin_graphmae": "https://raw.githubusercontent.com/THUDM/GraphMAE/main/chem/init_weights/pretrained.pth",
    "gin_molebert": "https://raw.githubusercontent.com/junxia97/Mole-BERT/main/model_gin/Mole-BERT.pth",
}


def test_entries_name_their_published_addresses():
    for name, url in NEW.items():
        entry = hub.get_entry(name)
        assert entry.url == url and entry.gnn_type == "gin" and entry.architecture["emb_dim"] == 300
    assert hub.get_entry("gin_graphcl").strategy == "graphcl" and hub.get_entry("gin_graphmae").strategy == "graphmae"
    # the Mole-BERT file is Hu et al.'s supervised_masking checkpoint (same git blob): said so, not hidden
    molebert = hub.get_entry("gin_molebert")
    assert molebert.strategy == "supervised_masking" and "supervised_masking" in molebert.description
    assert molebert.description.startswith("NOT a Mole-BERT model")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", sorted(NEW))
def test_offline_fails_with_one_line_naming_address_and_folder(tmp_path, monkeypatch, name):
    monkeypatch.setenv("GNNPRETRAIN_CHECKPOINTS", str(tmp_path / "ckpts"))
    entry = hub.get_entry(name)
    where = str(tmp_path / "ckpts" / "chem" / entry.filename)
    with pytest.raises(hub.CheckpointUnavailableError) as err:
        hub.load(name, cache=tmp_path / "cache", download=False)
    assert entry.url in str(err.value) and where in str(err.value) and "\n" not in str(err.value)
    # a failed download (no network: here a closed local port stands in for the address) says the same
    offline = replace(entry, base_url=f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setitem(hub.REGISTRY, name, offline)
    with pytest.raises(hub.CheckpointUnavailableError) as err:
        hub.load(name, cache=tmp_path / "cache", progress=False)
    assert offline.url in str(err.value) and where in str(err.value) and "\n" not in str(err.value)
    assert not any((tmp_path / "cache").rglob("*.pth*"))


@pytest.mark.parametrize("name", sorted(NEW))
def test_a_file_with_the_official_key_layout_loads_strictly_from_the_named_folder(tmp_path, name):
    """Both official codes save ``GNN(5, 300).state_dict()`` of the pretrain-gnns encoder; a file with that
    layout, put where the offline error says, loads into the entry's architecture with every tensor kept."""
    torch.manual_seed(0)
    sd = OfficialGNN(5, 300).state_dict()
    entry = hub.get_entry(name)
    (tmp_path / "chem").mkdir()
    torch.save(sd, tmp_path / "chem" / entry.filename)
    gnn = hub.load(name, checkpoints=tmp_path, cache=tmp_path / "cache", download=False)
    state = gnn.state_dict()
    assert set(state) == set(sd)
    assert all(torch.equal(state[k], v) for k, v in sd.items())
    assert gnn.hub_info["strategy"] == entry.strategy


@pytest.mark.parametrize("name", sorted(NEW))
def test_published_file_loads_strictly_when_present(name):
    entry = hub.get_entry(name)
    try:  # the shared checkpoint folder, or the cache after an earlier download
        path = hub.resolve(name, download=False)
    except hub.CheckpointUnavailableError:
        pytest.skip(f"{entry.filename} not in {checkpoints_root() / 'chem'} nor the cache (download {entry.url})")
    raw = hub.load_state_dict(path)
    gnn = hub.load(name, download=False)
    state = gnn.state_dict()
    assert set(state) == set(raw)
    assert all(torch.equal(state[k], v) for k, v in raw.items())
