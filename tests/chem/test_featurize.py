"""Featurization: the reference notes' worked examples, values the reference cannot encode, and
equality of the OGB featurizer with ``ogb.utils.smiles2graph``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem

from gnnpretrain.chem import FEATURIZERS, UnsupportedMolecule, mol_to_graph, smiles_to_graph
from gnnpretrain.chem.featurize import NUM_BOND_DIRECTION, NUM_CHIRALITY_TAG

ChiralType = Chem.rdchem.ChiralType
BondDir = Chem.rdchem.BondDir


def edges_of(g):
    """(src, dst, bond type, direction) tuples in edge order."""
    return [tuple(e) for e in torch.cat([g.edge_index.t(), g.edge_attr], dim=1).tolist()]


def test_alanine_matches_reference_notes():
    g = smiles_to_graph("C[C@H](N)C(=O)O")
    assert g.x.dtype == torch.long and g.edge_index.dtype == torch.long and g.edge_attr.dtype == torch.long
    assert g.x.tolist() == [[5, 0], [5, 2], [6, 0], [5, 0], [7, 0], [7, 0]]
    bonds = [(0, 1, 0), (1, 2, 0), (1, 3, 0), (3, 4, 1), (3, 5, 0)]
    expected = []
    for i, j, t in bonds:  # each bond twice, i→j then j→i, in bond order
        expected += [(i, j, t, 0), (j, i, t, 0)]
    assert edges_of(g) == expected


def test_indole_is_all_aromatic():
    g = smiles_to_graph("c1ccc2[nH]ccc2c1")
    assert g.num_nodes == 9 and g.edge_index.shape == (2, 20) and g.edge_attr.shape == (20, 2)
    assert set(g.edge_attr[:, 0].tolist()) == {3}
    assert g.x[:, 0].tolist().count(6) == 1  # one nitrogen (atomic number 7 → 6)


def test_salt_fragment_has_no_edges():
    g = smiles_to_graph("CCN(CC)CC.Cl")
    assert g.num_nodes == 8 and g.edge_index.shape == (2, 12)
    assert g.x[7].tolist() == [16, 0]  # chlorine
    assert 7 not in g.edge_index.flatten().tolist()


def test_molecule_without_bonds_has_empty_edges():
    for featurizer, bond_dim in (("reference", 2), ("ogb", 3)):
        g = smiles_to_graph("[Na+]", featurizer)
        assert g.edge_index.shape == (2, 0) and g.edge_attr.shape == (0, bond_dim)
        assert g.edge_index.dtype == torch.long and g.edge_attr.dtype == torch.long


def test_double_bond_direction_is_encoded():
    g = smiles_to_graph("F/C=C/F")
    dirs = set(g.edge_attr[:, 1].tolist())
    assert dirs <= {0, 1, 2} and dirs & {1, 2}, "E/Z stereo should give ENDUPRIGHT/ENDDOWNRIGHT directions"


@pytest.mark.parametrize(
    "tag",
    [ChiralType.CHI_OTHER, ChiralType.CHI_TETRAHEDRAL, ChiralType.CHI_ALLENE, ChiralType.CHI_SQUAREPLANAR,
     ChiralType.CHI_TRIGONALBIPYRAMIDAL, ChiralType.CHI_OCTAHEDRAL],
)
def test_unencodable_chirality_tags_map_to_unspecified(tag):
    mol = Chem.RWMol(Chem.MolFromSmiles("C[C@H](N)O"))
    mol.GetAtomWithIdx(1).SetChiralTag(tag)
    g = mol_to_graph(mol)
    assert g.x[1].tolist() == [5, 0]
    assert int(g.x[:, 1].max()) < NUM_CHIRALITY_TAG


def test_square_planar_smiles_from_newer_rdkit():
    mol = Chem.MolFromSmiles("F[Pt@SP1](Cl)(Br)I")
    assert mol.GetAtomWithIdx(1).GetChiralTag() == ChiralType.CHI_SQUAREPLANAR
    g = smiles_to_graph("F[Pt@SP1](Cl)(Br)I")
    assert g.x[1].tolist() == [77, 0]  # platinum, chirality unspecified


def test_dative_bond_is_single():
    mol = Chem.MolFromSmiles("[NH3]->[Cu+2]")
    assert mol.GetBondWithIdx(0).GetBondType() == Chem.rdchem.BondType.DATIVE
    g = smiles_to_graph("[NH3]->[Cu+2]")
    assert g.edge_attr.tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize("bdir", [BondDir.EITHERDOUBLE, BondDir.BEGINWEDGE, BondDir.BEGINDASH, BondDir.UNKNOWN])
def test_unencodable_bond_directions_map_to_none(bdir):
    mol = Chem.RWMol(Chem.MolFromSmiles("ClC=CCl"))
    mol.GetBondWithIdx(1).SetBondDir(bdir)
    g = mol_to_graph(mol)
    assert g.edge_attr[2].tolist() == [1, 0] and g.edge_attr[3].tolist() == [1, 0]
    assert int(g.edge_attr[:, 1].max()) < NUM_BOND_DIRECTION


def test_dummy_atom_is_rejected():
    assert smiles_to_graph("*C(=O)O") is None
    with pytest.raises(UnsupportedMolecule, match="atomic number 0"):
        mol_to_graph(Chem.MolFromSmiles("*C(=O)O"))


def test_unencodable_bond_type_is_rejected():
    mol = Chem.RWMol()
    a, b = mol.AddAtom(Chem.Atom(6)), mol.AddAtom(Chem.Atom(6))
    mol.AddBond(a, b, Chem.rdchem.BondType.ZERO)
    with pytest.raises(UnsupportedMolecule, match="bond type"):
        mol_to_graph(mol.GetMol())


@pytest.mark.parametrize("bad", ["C1CC", "not a smiles", "", "   ", None, 3.0])
def test_unparseable_input_gives_none(bad):
    assert smiles_to_graph(bad) is None


def test_unknown_featurizer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown featurizer 'morgan'.*ogb.*reference"):
        smiles_to_graph("CCO", "morgan")
    assert set(FEATURIZERS) == {"reference", "ogb"}


def test_ogb_featurizer_equals_ogb_smiles2graph(data_dir):
    from ogb.utils import smiles2graph

    import pandas as pd

    smiles = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv")["smiles"].tolist()[:150]
    smiles += ["C[C@H](N)C(=O)O", "F/C=C/F", "[Na+].[Cl-]", "[NH3]->[Cu+2]", "*C(=O)O", "F[Pt@SP1](Cl)(Br)I"]
    for s in smiles:
        ours = smiles_to_graph(s, "ogb")
        ref = smiles2graph(s)
        assert ours is not None, s
        assert ours.x.shape[1] == 9 and ours.edge_attr.shape[1] == 3
        assert np.array_equal(ours.x.numpy(), ref["node_feat"]), s
        assert np.array_equal(ours.edge_index.numpy(), ref["edge_index"]), s
        assert np.array_equal(ours.edge_attr.numpy(), ref["edge_feat"]), s
