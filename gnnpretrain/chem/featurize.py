"""Molecule → graph featurization.

The ``"reference"`` featurizer reproduces the paper's code exactly (2 atom and 2 bond integer
features); see ``docs/INTERFACES.md`` and the reference notes. Values the reference cannot encode
get the documented behaviour below instead of an out-of-range index or a crash:

* chirality tags other than UNSPECIFIED / TETRAHEDRAL_CW / TETRAHEDRAL_CCW (``CHI_OTHER`` and the
  newer RDKit tags such as ``CHI_TETRAHEDRAL``, ``CHI_ALLENE``, ``CHI_SQUAREPLANAR``) → 0
  (unspecified): the reference's embedding has only three rows;
* ``DATIVE`` bonds → SINGLE (index 0): a dative bond is a two-centre, two-electron single bond;
* bond directions other than NONE / ENDUPRIGHT / ENDDOWNRIGHT (``EITHERDOUBLE``, ``ENDDOWNLEFT``,
  ``ENDUPLEFT``, ``UNKNOWN``) → NONE (index 0);
* any other bond type (``ZERO``, ``HYDROGEN``, ``IONIC``, ``ONEANDAHALF`` …) or an atom with atomic
  number 0 (a dummy / query atom ``*``) or above 118 → the molecule is rejected
  (:class:`UnsupportedMolecule`); dataset loaders skip it and count it in one warning.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from rdkit import Chem, RDLogger
from torch_geometric.data import Data

NUM_ATOM_TYPE = 120  # atomic numbers 1..118 → 0..117, ... 119 is the mask token
MASK_ATOM_TYPE = 119
NUM_CHIRALITY_TAG = 3
NUM_BOND_TYPE = 6  # single, double, triple, aromatic, self-loop (4), mask (5)
SELF_LOOP_BOND_TYPE = 4
MASK_BOND_TYPE = 5
NUM_BOND_DIRECTION = 3

_CHIRALITY = {
    Chem.rdchem.ChiralType.CHI_UNSPECIFIED: 0,
    Chem.rdchem.ChiralType.CHI_TETRAHEDRAL_CW: 1,
    Chem.rdchem.ChiralType.CHI_TETRAHEDRAL_CCW: 2,
}
_BOND_TYPE = {
    Chem.rdchem.BondType.SINGLE: 0,
    Chem.rdchem.BondType.DOUBLE: 1,
    Chem.rdchem.BondType.TRIPLE: 2,
    Chem.rdchem.BondType.AROMATIC: 3,
    Chem.rdchem.BondType.DATIVE: 0,
}
_BOND_DIR = {
    Chem.rdchem.BondDir.NONE: 0,
    Chem.rdchem.BondDir.ENDUPRIGHT: 1,
    Chem.rdchem.BondDir.ENDDOWNRIGHT: 2,
}


class UnsupportedMolecule(ValueError):
    """Raised for a molecule the chosen featurizer cannot encode (see module docstring)."""


def parse_smiles(smiles: str) -> Chem.Mol | None:
    """RDKit-parse a SMILES string quietly; ``None`` if RDKit cannot parse it."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        return Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")


def mol_to_graph_reference(mol: Chem.Mol) -> Data:
    """The paper's featurization of an RDKit molecule (raises :class:`UnsupportedMolecule`)."""
    atoms = []
    for atom in mol.GetAtoms():
        z = atom.GetAtomicNum()
        if not 1 <= z <= 118:
            raise UnsupportedMolecule(f"atomic number {z} (atom {atom.GetIdx()}) cannot be encoded")
        atoms.append((z - 1, _CHIRALITY.get(atom.GetChiralTag(), 0)))
    x = torch.tensor(atoms, dtype=torch.long).view(-1, 2)

    rows: list[tuple[int, int, int, int]] = []
    for bond in mol.GetBonds():
        btype = _BOND_TYPE.get(bond.GetBondType())
        if btype is None:
            raise UnsupportedMolecule(f"bond type {bond.GetBondType()} (bond {bond.GetIdx()}) cannot be encoded")
        bdir = _BOND_DIR.get(bond.GetBondDir(), 0)
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        rows.append((i, j, btype, bdir))
        rows.append((j, i, btype, bdir))
    if rows:
        arr = torch.tensor(rows, dtype=torch.long)
        edge_index = arr[:, :2].t().contiguous()
        edge_attr = arr[:, 2:].contiguous()
    else:
        edge_index = torch.empty((2, 0), dtype=torch.long)
        edge_attr = torch.empty((0, 2), dtype=torch.long)
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr)


def mol_to_graph_ogb(mol: Chem.Mol) -> Data:
    """OGB's featurization (9 atom, 3 bond integer features) via ``ogb.utils.features``."""
    from ogb.utils.features import atom_to_feature_vector, bond_to_feature_vector

    x = torch.tensor(np.array([atom_to_feature_vector(a) for a in mol.GetAtoms()], dtype=np.int64)).view(-1, 9)
    rows, feats = [], []
    for bond in mol.GetBonds():
        f = bond_to_feature_vector(bond)
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        rows += [(i, j), (j, i)]
        feats += [f, f]
    if rows:
        edge_index = torch.tensor(rows, dtype=torch.long).t().contiguous()
        edge_attr = torch.tensor(feats, dtype=torch.long)
    else:
        edge_index = torch.empty((2, 0), dtype=torch.long)
        edge_attr = torch.empty((0, 3), dtype=torch.long)
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr)


FEATURIZERS: dict[str, Callable[[Chem.Mol], Data]] = {
    "reference": mol_to_graph_reference,
    "ogb": mol_to_graph_ogb,
}


def get_featurizer(name: str) -> Callable[[Chem.Mol], Data]:
    try:
        return FEATURIZERS[name]
    except KeyError:
        raise ValueError(f"unknown featurizer {name!r}; choose one of {sorted(FEATURIZERS)}") from None


def mol_to_graph(mol: Chem.Mol, featurizer: str = "reference") -> Data:
    return get_featurizer(featurizer)(mol)


def smiles_to_graph(smiles: str, featurizer: str = "reference") -> Data | None:
    """Featurize a SMILES string; ``None`` when RDKit cannot parse it or it cannot be encoded."""
    mol = parse_smiles(smiles)
    if mol is None:
        return None
    try:
        return mol_to_graph(mol, featurizer)
    except UnsupportedMolecule:
        return None
