"""GraphStore round trip / collate and GraphStoreLoader order, sharding and prefetch."""

from __future__ import annotations

import json

import pytest
import torch
from _data_helpers import bbbp_smiles, graphs
from torch_geometric.data import Batch

from gnnpretrain.data import GraphStore, GraphStoreLoader


@pytest.fixture(scope="module")
def data_list(data_dir):
    data = graphs(list(bbbp_smiles(data_dir, 200)) + ["C", "[Na+].[Cl-]"])
    for i, d in enumerate(data):  # graph-level labels with a missing entry, as the contract's y
        d.y = torch.tensor([[float(i % 2), float("nan") if i % 3 == 0 else 1.0]])
    return data


def _same(a, b):
    for key in ("x", "edge_index", "edge_attr", "y"):
        ta, tb = getattr(a, key), getattr(b, key)
        assert ta.dtype == tb.dtype and ta.shape == tb.shape, key
        assert torch.equal(torch.nan_to_num(ta.float(), nan=-7.0), torch.nan_to_num(tb.float(), nan=-7.0)), key


def test_round_trip_in_memory_and_on_disk(data_list, tmp_path):
    store = GraphStore.from_data_list(data_list)
    assert len(store) == len(data_list)
    assert store.x.dtype == torch.int8 and store.edge_index.dtype == torch.int8  # compact storage
    for i in (0, 5, len(data_list) - 2, len(data_list) - 1, -1):
        _same(store[i], data_list[i])
    store.save(tmp_path / "s")
    assert not list(tmp_path.glob(".s.*")), "no temporary folder may be left behind"
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["num_graphs"] == len(data_list)
    loaded = GraphStore.load(tmp_path / "s")
    assert {"x", "edge_index", "edge_attr"} <= set(loaded.memory_mapped)
    for i, d in enumerate(data_list):
        _same(loaded[i], d)
    # overwrite in place
    GraphStore.from_data_list(data_list[:3]).save(tmp_path / "s")
    assert len(GraphStore.load(tmp_path / "s")) == 3
    with pytest.raises(IndexError, match="out of range"):
        store[len(store)]
    with pytest.raises(FileNotFoundError, match="no graph store"):
        GraphStore.load(tmp_path / "missing")


def test_collate_equals_pyg(data_list, tmp_path):
    store = GraphStore.from_data_list(data_list)
    store.save(tmp_path / "s")
    mm = GraphStore.load(tmp_path / "s")
    idx = torch.tensor([200, 3, 201, 3, 77, 0, 150])  # repeats, single atoms, bond-less graphs
    ref = Batch.from_data_list([data_list[i] for i in idx])
    for s in (store, mm):
        b = s.collate(idx)
        _same(b, ref)
        assert torch.equal(b.batch, ref.batch) and torch.equal(b.ptr, ref.ptr)
        assert b.num_graphs == ref.num_graphs
        for got, want in zip(b.to_data_list(), ref.to_data_list()):
            _same(got, want)
    sub = store[idx]
    assert isinstance(sub, GraphStore) and len(sub) == idx.numel()
    _same(sub.collate(torch.arange(len(sub))), ref)


def test_from_data_list_errors():
    with pytest.raises(ValueError, match="empty list"):
        GraphStore.from_data_list([])
    a, b = graphs(["CCO", "CC"])
    a.y = torch.tensor([[1.0]])
    with pytest.raises(ValueError, match="edge_attr / y"):
        GraphStore.from_data_list([a, b])


def test_loader_shards_disjoint_and_cover(data_list):
    store = GraphStore.from_data_list(data_list)  # 202 graphs
    n = len(store)
    for ws in (1, 3, 4):
        shards = [GraphStoreLoader(store, 16, seed=1, rank=r, world_size=ws).indices() for r in range(ws)]
        assert len({s.numel() for s in shards}) == 1  # equal steps on every rank
        allidx = torch.cat(shards)
        assert set(allidx.tolist()) == set(range(n))
        assert allidx.numel() - n < ws  # only padding repeats
        dropped = [GraphStoreLoader(store, 16, seed=1, rank=r, world_size=ws, drop_last=True).indices() for r in range(ws)]
        flat = torch.cat(dropped)
        assert flat.unique().numel() == flat.numel() == (n // ws) * ws  # disjoint
        lens = {len(GraphStoreLoader(store, 16, rank=r, world_size=ws)) for r in range(ws)}
        assert len(lens) == 1


def test_loader_epochs_and_batches(data_list):
    store = GraphStore.from_data_list(data_list)
    loader = GraphStoreLoader(store, 32, seed=7)
    e0 = loader.indices()
    loader.set_epoch(1)
    e1 = loader.indices()
    loader.set_epoch(0)
    assert torch.equal(loader.indices(), e0) and not torch.equal(e0, e1)
    batches = list(loader)
    assert len(batches) == len(loader) == 7 and batches[-1].num_graphs == 202 - 6 * 32
    ref = Batch.from_data_list([data_list[i] for i in e0[:32]])
    _same(batches[0], ref)
    assert len(list(GraphStoreLoader(store, 32, drop_last=True))) == 6
    ordered = GraphStoreLoader(store, 50, shuffle=False)
    assert torch.equal(ordered.indices(), torch.arange(202))
    # the prefetch thread yields the same batches, and surfaces errors
    pre = list(GraphStoreLoader(store, 32, seed=7, prefetch=2))
    for a, b in zip(batches, pre):
        _same(a, b)

    def boom(batch):
        raise RuntimeError("transform failed")

    with pytest.raises(RuntimeError, match="transform failed"):
        list(GraphStoreLoader(store, 32, prefetch=2, transform=boom))
    # breaking out early does not hang
    for i, _ in enumerate(GraphStoreLoader(store, 8, prefetch=1)):
        if i == 2:
            break


def test_loader_argument_errors(data_list):
    store = GraphStore.from_data_list(data_list[:4])
    with pytest.raises(ValueError, match="batch_size"):
        GraphStoreLoader(store, 0)
    with pytest.raises(ValueError, match="rank"):
        GraphStoreLoader(store, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="leaves no graph"):
        GraphStoreLoader(store, 2, world_size=8, drop_last=True)


def test_concat_and_pyg_dataloader(data_list):
    from torch_geometric.loader import DataLoader

    from gnnpretrain.data import concat_stores

    a, b = GraphStore.from_data_list(data_list[:50]), GraphStore.from_data_list(data_list[50:])
    both = concat_stores([a, b])
    assert len(both) == len(data_list)
    for i in (0, 49, 50, len(data_list) - 1):
        _same(both[i], data_list[i])
    # a GraphStore is a PyG-style dataset: PyG's own DataLoader batches it like the list of Data
    pyg = next(iter(DataLoader(both, batch_size=40, shuffle=False)))
    _same(pyg, both.collate(torch.arange(40)))
    assert [d.num_nodes for d in both][:3] == [d.num_nodes for d in data_list[:3]]
