"""Protein ego-networks from PPI + GO data: dataset builder, bio pre-training transforms/strategies and
the bio downstream task (see bio/README.md).

Importing the package registers the bio strategies (``domain="bio"``), pre-training datasets and the
fine-tuning task loader with the shared registries.
"""

from gnnpretrain.bio.dataset import BioConfig, BioEgoNetworks, EgoData, format_summary
from gnnpretrain.bio.egonet import EgoNetworkExtractor
from gnnpretrain.bio.ppi import CHANNELS, PPINetwork, read_string_edges

__all__ = ["BioConfig", "BioEgoNetworks", "EgoData", "EgoNetworkExtractor", "PPINetwork", "CHANNELS",
           "read_string_edges", "format_summary"]


def _register() -> None:
    # Registration modules import the shared strategy/training packages; import them lazily here so
    # that a failure there names its own cause.
    from gnnpretrain.bio import pretrain_data, strategies, tasks  # noqa: F401


_register()
