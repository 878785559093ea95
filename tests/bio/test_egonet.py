"""Ego-network extraction and edge features, against the hand-checked toy network (tests/bio/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnpretrain.bio.egonet import EgoNetworkExtractor
from gnnpretrain.bio.ppi import CHANNELS, read_string_edges


def _ids(net, ego):
    return [int(net.protein_ids[i]) for i in ego.nodes]


def _undirected(net, ego):
    ids = _ids(net, ego)
    ei = ego.edge_index
    return {tuple(sorted((ids[int(a)], ids[int(b)]))) for a, b in ei.t().tolist()}


def test_reads_and_binarizes_channels(toy):
    net = read_string_edges(toy["ppi"])
    assert net.num_proteins == 9 and net.num_edges == 11
    assert net.absent_channels == ["textmining"]
    row = net.channels[net.index_of()["1"] == net.edges[:, 0]][0]  # edge 1-2 is the first edge of node "1"
    #                    nbh fus coo coexp exp db text
    assert row.tolist() == [1, 0, 0, 1, 0, 1, 0]
    other = net.channels[(net.edges[:, 0] == net.index_of()["4"])][0]  # 4-7: experiments only
    assert other.tolist() == [0, 0, 0, 0, 1, 0, 0]
    # a threshold turns the weak transferred scores (10, 50) off but keeps database (900)
    strict = read_string_edges(toy["ppi"], thresholds=100)
    assert strict.channels[0].tolist() == [0, 0, 0, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="7 numbers"):
        read_string_edges(toy["ppi"], thresholds=[1, 2])


@pytest.mark.parametrize(
    "radius,max_neighbors,max_nodes,nodes,edges",
    [
        (1, None, None, [1, 2, 3, 4], {(1, 2), (1, 3), (1, 4), (2, 3)}),
        (1, 2, None, [1, 2, 3], {(1, 2), (1, 3), (2, 3)}),
        # hop 2 from frontier [2, 3]: 2's top-2 are 5 (950) and 1 (900) -> adds 5; 3's top-2 are 1, 2
        (2, 2, None, [1, 2, 3, 5], {(1, 2), (1, 3), (2, 3), (2, 5)}),
        (2, None, None, [1, 2, 3, 4, 5, 6, 7],
         {(1, 2), (1, 3), (1, 4), (2, 3), (2, 5), (3, 6), (4, 7), (5, 6)}),
        (2, None, 3, [1, 2, 3], {(1, 2), (1, 3), (2, 3)}),
    ],
)
def test_ego_network_matches_hand_check(toy, radius, max_neighbors, max_nodes, nodes, edges):
    net = read_string_edges(toy["ppi"])
    ex = EgoNetworkExtractor(net, radius, max_neighbors, max_nodes)
    ego = ex(net.index_of()["1"])
    assert _ids(net, ego) == nodes  # centre first, then in the order reached
    assert _undirected(net, ego) == edges  # induced subgraph
    ei = ego.edge_index
    assert ei.shape[1] == 2 * len(edges)
    assert torch.equal(ei[:, 0::2], ei[:, 1::2].flip(0))  # (i->j, j->i) pairs
    assert (ei[0, 0::2] < ei[1, 0::2]).all()
    assert ego.edge_attr.shape == (ei.shape[1], 9) and ego.edge_attr.dtype == torch.float32
    assert (ego.edge_attr[:, 7:] == 0).all()  # self-loop and mask flags are off on real edges


def test_edge_features_follow_their_edge(toy):
    net = read_string_edges(toy["ppi"])
    ego = EgoNetworkExtractor(net, 2, None)(net.index_of()["2"])
    ids = _ids(net, ego)
    for k in range(ego.edge_index.shape[1]):
        a, b = (ids[int(v)] for v in ego.edge_index[:, k])
        want = [1, 0, 0, 1, 0, 1, 0] if {a, b} == {1, 2} else [0, 0, 0, 0, 1, 0, 0]
        assert ego.edge_attr[k, :7].tolist() == want, (a, b)


def test_string_download_layout_and_species(tmp_path):
    f = tmp_path / "9606.protein.links.detailed.v12.0.txt"
    f.write_text(
        "protein1 protein2 neighborhood fusion cooccurence coexpression experimental database textmining combined_score\n"
        "9606.ENSP1 9606.ENSP2 0 0 0 80 0 0 300 400\n"
        "9606.ENSP2 9606.ENSP1 0 0 0 80 0 0 300 400\n"  # STRING lists both directions: merged
        "9606.ENSP2 9606.ENSP3 0 200 0 0 0 0 0 500\n"
    )
    g = tmp_path / "10090.protein.links.detailed.v12.0.txt"
    g.write_text(
        "protein1 protein2 neighborhood fusion cooccurence coexpression experimental database textmining combined_score\n"
        "10090.ENSMUSP1 10090.ENSMUSP2 0 0 0 0 0 0 900 900\n"
    )
    net = read_string_edges([f, g])
    assert net.num_edges == 3 and net.absent_channels == []
    sp = dict(zip(net.protein_ids, net.species.tolist()))
    assert sp["9606.ENSP1"] == 9606 and sp["10090.ENSMUSP2"] == 10090
    i = net.index_of()
    row = net.channels[(net.edges[:, 0] == min(i["9606.ENSP1"], i["9606.ENSP2"])) & (net.edges[:, 1] == max(i["9606.ENSP1"], i["9606.ENSP2"]))]
    assert row.tolist() == [[0, 0, 0, 1, 0, 0, 1]]  # coexpression + text mining
    assert CHANNELS[6] == "textmining"


def test_bad_input_messages(tmp_path, toy):
    with pytest.raises(FileNotFoundError, match="PPI edge file not found"):
        read_string_edges(tmp_path / "missing.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\tcombined_score\n1\t2\t900\n")
    with pytest.raises(ValueError, match="id_1/id_2"):
        read_string_edges(bad)
    net = read_string_edges(toy["ppi"])
    with pytest.raises(ValueError, match="radius"):
        EgoNetworkExtractor(net, 0)
