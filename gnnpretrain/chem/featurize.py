"""Molecule → graph featurization.

Two featurizers, selected by name (``FEATURIZERS``):

* ``"reference"`` reproduces the paper's code exactly: 2 integer atom features (atomic number − 1,
  chirality tag index) and 2 integer bond features (bond type index, bond direction index); every
  bond appears twice, i→j then j→i, in RDKit bond order. See ``docs/INTERFACES.md``.
* ``"ogb"`` is OGB's featurization (``ogb.utils.smiles2graph``: 9 atom, 3 bond features), kept
  identical to OGB's own function so that models and numbers are comparable with OGB baselines.

The reference code raises on any value outside its short lists. Newer RDKit produces values it
never saw, so the reference featurizer here has a documented behaviour for each of them instead of
an out-of-range index or a crash halfway through a dataset:

* chirality tags other than UNSPECIFIED / TETRAHEDRAL_CW / TETRAHEDRAL_CCW (``CHI_OTHER`` and the
  newer RDKit tags ``CHI_TETRAHEDRAL``, ``CHI_ALLENE``, ``CHI_SQUAREPLANAR``,
  ``CHI_TRIGONALBIPYRAMIDAL``, ``CHI_OCTAHEDRAL``) → 0 (unspecified): the reference's chirality
  embedding has only three rows, and "unspecified" is the honest value for a tag it cannot express;
* ``DATIVE`` bonds (e.g. ``[NH3]->[Cu]``) → SINGLE (index 0): a dative bond is a two-centre,
  two-electron single bond; older RDKit read such SMILES as single bonds;
* bond directions other than NONE / ENDUPRIGHT / ENDDOWNRIGHT (``EITHERDOUBLE``, ``BEGINWEDGE``,
  ``BEGINDASH``, ``UNKNOWN`` …) → NONE (index 0): these are drawing annotations, not E/Z stereo;
* any other bond type (``ZERO``, ``HYDROGEN``, ``IONIC``, ``ONEANDAHALF`` …) or an atom with atomic
  number 0 (a dummy / query atom ``*``) or above 118 → the molecule is rejected
  (:class:`UnsupportedMolecule`); :func:`smiles_to_graph` returns ``None`` and dataset loaders skip
  the molecule and count it in one warning (the ClinTox file has one such molecule).

The ``"ogb"`` featurizer maps unknown values to OGB's "misc" indices itself (that is OGB's
behaviour and is kept); dataset loaders still apply :func:`check_supported` so that the same
molecules are kept whichever featurizer is chosen (splits stay comparable).
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

# One row per graph part: atom rows and directed-edge rows (src, dst, *edge features).
AtomRows = list
EdgeRows = list


class UnsupportedMolecule(ValueError):
    """Raised for a molecule the chosen featurizer cannot encode (see module docstring)."""


def parse_smiles(smiles: str) -> Chem.Mol | None:
    """RDKit-parse a SMILES string quietly; ``None`` if it is not a string or RDKit cannot parse it."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        return Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")


def check_supported(mol: Chem.Mol) -> None:
    """Raise :class:`UnsupportedMolecule` if the reference featurization cannot encode ``mol``."""
    for atom in mol.GetAtoms():
        z = atom.GetAtomicNum()
        if not 1 <= z <= 118:
            raise UnsupportedMolecule(
                f"atomic number {z} (atom {atom.GetIdx()}, symbol {atom.GetSymbol()!r}) cannot be encoded: "
                "the reference atom vocabulary covers atomic numbers 1..118 (dummy atoms '*' are not chemistry)"
            )
    for bond in mol.GetBonds():
        if bond.GetBondType() not in _BOND_TYPE:
            raise UnsupportedMolecule(
                f"bond type {bond.GetBondType()} (bond {bond.GetIdx()}) cannot be encoded: the reference "
                "vocabulary has SINGLE, DOUBLE, TRIPLE, AROMATIC (DATIVE is read as SINGLE)"
            )


def reference_rows(mol: Chem.Mol) -> tuple[AtomRows, EdgeRows]:
    """Plain-Python rows of the paper's featurization: ``[(type, chirality)]`` and
    ``[(src, dst, bond_type, bond_dir)]``. Lists, not tensors, so dataset builders can
    concatenate tens of thousands of molecules without a per-molecule tensor cost. Checks the
    molecule as it goes (raises :class:`UnsupportedMolecule`, see :func:`check_supported`)."""
    chir = _CHIRALITY.get
    atoms = [(a.GetAtomicNum() - 1, chir(a.GetChiralTag(), 0)) for a in mol.GetAtoms()]
    if atoms and not 0 <= min(atoms)[0] <= max(atoms)[0] <= 117:
        check_supported(mol)  # raises with the full message
    btype, bdir = _BOND_TYPE.get, _BOND_DIR.get
    rows = []
    append = rows.append
    for bond in mol.GetBonds():
        t = btype(bond.GetBondType())
        if t is None:
            check_supported(mol)
        d = bdir(bond.GetBondDir(), 0)
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        append((i, j, t, d))
        append((j, i, t, d))
    return atoms, rows


def ogb_rows(mol: Chem.Mol) -> tuple[AtomRows, EdgeRows]:
    """Plain-Python rows of OGB's featurization (``ogb.utils.features``), same layout as above."""
    from ogb.utils.features import atom_to_feature_vector, bond_to_feature_vector

    atoms = [tuple(atom_to_feature_vector(a)) for a in mol.GetAtoms()]
    rows = []
    for bond in mol.GetBonds():
        f = tuple(bond_to_feature_vector(bond))
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        rows.append((i, j) + f)
        rows.append((j, i) + f)
    return atoms, rows


ROW_FEATURIZERS: dict[str, Callable[[Chem.Mol], tuple[AtomRows, EdgeRows]]] = {
    "reference": reference_rows,
    "ogb": ogb_rows,
}
# Number of (atom, bond) feature columns per featurizer.
FEATURE_DIMS: dict[str, tuple[int, int]] = {"reference": (2, 2), "ogb": (9, 3)}


def rows_to_data(atoms: AtomRows, rows: EdgeRows, dims: tuple[int, int]) -> Data:
    """Turn one molecule's rows into a ``Data`` with the contract's dtypes and shapes."""
    n_atom_feat, n_bond_feat = dims
    x = torch.tensor(np.asarray(atoms, dtype=np.int64).reshape(-1, n_atom_feat))
    if rows:
        arr = torch.tensor(np.asarray(rows, dtype=np.int64))
        edge_index = arr[:, :2].t().contiguous()
        edge_attr = arr[:, 2:].contiguous()
    else:
        edge_index = torch.empty((2, 0), dtype=torch.long)
        edge_attr = torch.empty((0, n_bond_feat), dtype=torch.long)
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr)


def mol_to_graph_reference(mol: Chem.Mol) -> Data:
    """The paper's featurization of an RDKit molecule (raises :class:`UnsupportedMolecule`)."""
    return rows_to_data(*reference_rows(mol), FEATURE_DIMS["reference"])


def mol_to_graph_ogb(mol: Chem.Mol) -> Data:
    """OGB's featurization (9 atom, 3 bond integer features), equal to ``ogb.utils.smiles2graph``."""
    return rows_to_data(*ogb_rows(mol), FEATURE_DIMS["ogb"])


FEATURIZERS: dict[str, Callable[[Chem.Mol], Data]] = {
    "reference": mol_to_graph_reference,
    "ogb": mol_to_graph_ogb,
}


def get_featurizer(name: str) -> Callable[[Chem.Mol], Data]:
    """Look a featurizer up by name, with an error that lists the valid names."""
    try:
        return FEATURIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown featurizer {name!r}; choose one of {sorted(FEATURIZERS)}") from None


def mol_to_graph(mol: Chem.Mol, featurizer: str = "reference") -> Data:
    """Featurize an RDKit molecule with the named featurizer."""
    return get_featurizer(featurizer)(mol)


def smiles_to_graph(smiles: str, featurizer: str = "reference") -> Data | None:
    """Featurize a SMILES string; ``None`` when RDKit cannot parse it or it cannot be encoded."""
    fn = get_featurizer(featurizer)
    mol = parse_smiles(smiles)
    if mol is None:
        return None
    try:
        return fn(mol)
    except UnsupportedMolecule:
        return None


def featurize_chunk(args: tuple[list[str], str]) -> dict:
    """Featurize a list of SMILES into flat arrays (module-level so a process pool can run it).

    Returns ``x`` [sum N, F], ``edges`` [sum E, 2 + B] (per-graph node numbering), ``n_nodes``,
    ``n_edges``, ``kept`` (positions in the chunk), ``unparsable`` and ``unsupported`` positions.
    """
    smiles, featurizer = args
    rows_fn = ROW_FEATURIZERS[featurizer]
    n_atom_feat, n_bond_feat = FEATURE_DIMS[featurizer]
    atoms_all: list = []
    edges_all: list = []
    n_nodes, n_edges, kept, unparsable, unsupported = [], [], [], [], []
    RDLogger.DisableLog("rdApp.*")
    try:
        for i, s in enumerate(smiles):
            mol = parse_smiles(s)
            if mol is None:
                unparsable.append(i)
                continue
            try:
                if featurizer != "reference":  # the reference rows check as they go
                    check_supported(mol)
                atoms, edges = rows_fn(mol)
            except UnsupportedMolecule:
                unsupported.append(i)
                continue
            atoms_all.extend(atoms)
            edges_all.extend(edges)
            n_nodes.append(len(atoms))
            n_edges.append(len(edges))
            kept.append(i)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return {
        "x": np.asarray(atoms_all, dtype=np.int64).reshape(-1, n_atom_feat),
        "edges": np.asarray(edges_all, dtype=np.int64).reshape(-1, 2 + n_bond_feat),
        "n_nodes": np.asarray(n_nodes, dtype=np.int64),
        "n_edges": np.asarray(n_edges, dtype=np.int64),
        "kept": kept,
        "unparsable": unparsable,
        "unsupported": unsupported,
    }
