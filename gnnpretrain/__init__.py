"""gnnpretrain: pre-training graph neural networks and measuring what it buys downstream.

Subpackages
-----------
nn          encoders (GIN/GCN/GraphSAGE/GAT with edge features), heads, checkpoint conversion
data        flat on-disk graph storage, fast batching, batched pre-training transforms
strategies  one class per pre-training strategy (contextpred, attrmasking, edgepred, infomax, supervised)
train       the pre-training loop, fine-tuning, strategy comparison
chem, bio   the two domains (featurizers and datasets)
vision      MobileNet / EfficientNet family (independent of the graph code)
"""

__version__ = "0.1.0"
