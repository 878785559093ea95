"""Pre-training strategies, all trained by :func:`gnnpretrain.train.pretrain.pretrain`.

``build_strategy("contextpred", domain="chem", encoder_kwargs={...}, mode="cbow")``; the registry is
``STRATEGIES[domain][name]``. Other domains (bio) register their variants with
``@register_strategy(name, domain="bio")``.

Chem strategies: Hu et al.'s ``contextpred``, ``attrmasking``, ``edgepred``, ``infomax``, ``supervised``, and
two later families on the same encoder, each following its official molecular code: ``graphcl``
(contrastive, You et al. 2020) and ``graphmae`` (masked autoencoder, Hou et al. 2022).
"""

from .base import (
    STRATEGIES,
    Strategy,
    build_strategy,
    cycle_index,
    get_strategy_class,
    register_strategy,
    strategy_names,
    strategy_option_names,
    training_default,
)
from .attrmasking import AttrMasking
from .contextpred import ContextPred
from .edgepred import EdgePred
from .graphcl import GraphCL
from .graphmae import GraphMAE
from .infomax import Infomax
from .supervised import Supervised

__all__ = [
    "STRATEGIES",
    "Strategy",
    "build_strategy",
    "cycle_index",
    "get_strategy_class",
    "register_strategy",
    "strategy_names",
    "strategy_option_names",
    "training_default",
    "AttrMasking",
    "ContextPred",
    "EdgePred",
    "GraphCL",
    "GraphMAE",
    "Infomax",
    "Supervised",
]
