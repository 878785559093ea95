"""Reading the paper's processed bio layout (a pickled PyG 1.x ``(Data, slices)`` pair)."""

from __future__ import annotations

import torch
import torch_geometric.data.data as pyg_data

from gnnpretrain.bio.paper import PaperBioDataset


class _OldStyleData:
    """Pickles as an old ``torch_geometric.data.data.Data`` whose attributes sit in ``__dict__``."""

    def __init__(self, **fields):
        self.fields = fields

    def __reduce__(self):
        return (pyg_data.Data, (), self.fields)


def _write_reference_file(root):
    # two graphs: 3 nodes / 2 undirected edges (centre 1) and 2 nodes / 1 edge (centre 0)
    e1 = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    e2 = torch.tensor([[0, 1], [1, 0]])
    a = torch.zeros(6, 9)
    a[0:2, 4] = 1
    a[2:4, [3, 5]] = 1
    a[4:6, 0] = 1
    fields = dict(
        x=torch.ones(5, 1), edge_index=torch.cat([e1, e2], 1), edge_attr=a,
        species_id=torch.tensor([9606, 3702]), center_node_idx=torch.tensor([1, 0]),
        go_target_downstream=torch.tensor([1, 0, 0, 1]), go_target_pretrain=torch.tensor([0, 1, 1, 1, 0, 0]),
    )
    slices = dict(x=torch.tensor([0, 3, 5]), edge_index=torch.tensor([0, 4, 6]), edge_attr=torch.tensor([0, 4, 6]),
                  species_id=torch.tensor([0, 1, 2]), center_node_idx=torch.tensor([0, 1, 2]),
                  go_target_downstream=torch.tensor([0, 2, 4]), go_target_pretrain=torch.tensor([0, 3, 6]))
    (root / "processed").mkdir(parents=True)
    torch.save((_OldStyleData(**fields), slices), root / "processed" / "geometric_data_processed.pt")


def test_reads_legacy_processed_file(tmp_path):
    _write_reference_file(tmp_path)
    ds = PaperBioDataset(tmp_path)
    assert len(ds) == 2 and ds.num_tasks == 2 and ds.num_pretrain_tasks == 3
    g0, g1 = ds[0], ds[1]
    assert g0.num_nodes == 3 and g0.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert g0.edge_attr.dtype == torch.float32 and g0.edge_attr[2].tolist() == [0, 0, 0, 1, 0, 1, 0, 0, 0]
    assert g0.y.tolist() == [[1.0, 0.0]] and g1.y.tolist() == [[0.0, 1.0]]
    assert g0.y_pretrain.tolist() == [[0, 1, 1]] and int(g1.species_id) == 3702
    assert (g0.x == 1).all() and g0.x.dtype == torch.long
    from torch_geometric.loader import DataLoader

    b = next(iter(DataLoader(ds, batch_size=2)))
    assert b.center_node_idx.tolist() == [1, 3]  # offset by the first graph's 3 nodes
    assert set(ds.split) >= {"train", "valid", "test", "test_pretrain"}
    # species split (graph 0 is human); with one graph per side the reference's int() rounding keeps none
    assert set(ds.split["test"].tolist()) | set(ds.split["test_pretrain"].tolist()) <= {0}
    assert set(ds.split["train"].tolist()) | set(ds.split["valid"].tolist()) <= {1}


def test_missing_file_message(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="geometric_data_processed.pt"):
        PaperBioDataset(tmp_path)


def test_legacy_reader_stand_ins_beat_globally_registered_classes(tmp_path):
    """PyG registers its real ``Data`` as a safe global on import (and torch keeps that list in a set,
    so which entry wins a name clash is arbitrary): the legacy reader must still use its stand-ins,
    and leave the process-wide list as it found it."""
    _write_reference_file(tmp_path)
    clash = (pyg_data.Data, "torch_geometric.data.data.Data")
    original = list(torch.serialization.get_safe_globals())
    torch.serialization.add_safe_globals([clash, pyg_data.Data])
    before = set(map(repr, torch.serialization.get_safe_globals()))
    try:
        for _ in range(3):
            ds = PaperBioDataset(tmp_path)
            assert len(ds) == 2 and ds[0].edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
        assert set(map(repr, torch.serialization.get_safe_globals())) == before
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(original)
