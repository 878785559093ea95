"""Chemistry: featurization, MoleculeNet datasets. Other chemistry modules (corpus, chembl) are
imported from their own submodules."""

from gnnpretrain.chem.featurize import (
    FEATURIZERS,
    UnsupportedMolecule,
    get_featurizer,
    mol_to_graph,
    parse_smiles,
    smiles_to_graph,
)
from gnnpretrain.chem.moleculenet import MOLECULENET_NAMES, MoleculeNet

__all__ = [
    "FEATURIZERS",
    "MOLECULENET_NAMES",
    "MoleculeNet",
    "UnsupportedMolecule",
    "get_featurizer",
    "mol_to_graph",
    "parse_smiles",
    "smiles_to_graph",
]
