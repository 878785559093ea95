"""Pre-training strategies, all trained by :func:`gnnpretrain.train.pretrain.pretrain`.

``build_strategy("contextpred", domain="chem", encoder_kwargs={...}, mode="cbow")``; the registry is
``STRATEGIES[domain][name]``. Other domains (bio) register their variants with
``@register_strategy(name, domain="bio")``.
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
)
from .attrmasking import AttrMasking
from .contextpred import ContextPred
from .edgepred import EdgePred
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
    "AttrMasking",
    "ContextPred",
    "EdgePred",
    "Infomax",
    "Supervised",
]
