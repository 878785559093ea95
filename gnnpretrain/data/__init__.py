"""Fast pre-training data pipeline: flat graph storage, vectorised batching and batched transforms.

See ``docs/INTERFACES.md`` ("Pre-training data"). Everything in the hot path works on whole batches with
tensor operations on the batch's device; the per-graph ``BaseTransform`` twins exist for porting code.
"""

from .augment import AugmentedView, augment, augment_keep, drop_nodes_keep, induced_view, subgraph_keep
from .context import ContextPair, bfs_distances, extract_context, sample_roots
from .loader import GraphStoreLoader
from .masking import MaskedBatch, mask_atoms, num_to_mask, sample_per_graph
from .negatives import sample_negative_edges
from .store import GraphStore, concat_stores
from .transforms import ExtractSubstructureContext, MaskAtom

__all__ = [
    "AugmentedView",
    "augment",
    "augment_keep",
    "drop_nodes_keep",
    "induced_view",
    "subgraph_keep",
    "ContextPair",
    "ExtractSubstructureContext",
    "GraphStore",
    "GraphStoreLoader",
    "MaskAtom",
    "MaskedBatch",
    "bfs_distances",
    "concat_stores",
    "extract_context",
    "mask_atoms",
    "num_to_mask",
    "sample_negative_edges",
    "sample_per_graph",
    "sample_roots",
]
