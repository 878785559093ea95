"""gnnpretrain: pre-training graph neural networks and measuring what it buys downstream.

Subpackages
-----------
nn          encoders (GIN/GCN/GraphSAGE/GAT with edge features), heads, checkpoint conversion
data        flat on-disk graph storage, fast batching, batched pre-training transforms
strategies  one class per pre-training strategy (contextpred, attrmasking, edgepred, infomax, supervised)
train       the pre-training loop, fine-tuning, strategy comparison
chem, bio   the two domains (featurizers and datasets)
vision      MobileNet / EfficientNet family (independent of the graph code)
hub         published pre-trained encoders by name; ``load(name_or_path)``

``gnnpretrain.embed(smiles, model)`` and ``gnnpretrain.MoleculeEmbedder`` (scikit-learn) embed molecules
with a pre-trained encoder (see :mod:`gnnpretrain.embeddings`).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy: ``import gnnpretrain`` stays light (no torch/rdkit) until one of these is used
    if name in ("embed", "MoleculeEmbedder", "Embeddings"):
        import importlib

        return getattr(importlib.import_module("gnnpretrain.embeddings"), name)
    if name == "hub":
        import importlib

        return importlib.import_module("gnnpretrain.hub")
    raise AttributeError(f"module 'gnnpretrain' has no attribute {name!r}")
