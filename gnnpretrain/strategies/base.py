"""The shared interface of pre-training strategies and the registry that names them.

A strategy bundles everything one pre-training method needs besides the data and the optimiser: the
encoder that is later fine-tuned, any auxiliary networks (heads, a context GNN, a discriminator), the
batched transform it applies to a collated batch (masking, context extraction, negative sampling) and
its loss. Keeping the transform inside ``forward`` means the transform runs on the batch's device and
the data loader only collates, and it lets one training loop (``gnnpretrain.train.pretrain``) train
every strategy, on one device or under DistributedDataParallel.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor

__all__ = [
    "Strategy",
    "STRATEGIES",
    "register_strategy",
    "build_strategy",
    "get_strategy_class",
    "strategy_names",
    "strategy_option_names",
    "training_default",
    "PAPER_TRAINING_DEFAULTS",
    "cycle_index",
    "signed_accuracy",
    "zero_loss",
]

#: ``STRATEGIES[domain][name] -> Strategy subclass``. Filled by :func:`register_strategy`.
STRATEGIES: dict[str, dict[str, type["Strategy"]]] = {}


def register_strategy(name: str, domain: str = "chem") -> Callable[[type], type]:
    """Class decorator: make ``cls`` buildable as ``build_strategy(name, domain=domain)``.

    Registering the same (domain, name) twice is an error unless it is the same class (a module
    re-import), so that two implementations cannot silently shadow each other.
    """

    def deco(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise TypeError(f"register_strategy({name!r}): expected a Strategy subclass, got {cls!r}")
        table = STRATEGIES.setdefault(domain, {})
        old = table.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(
                f"strategy {name!r} is already registered for domain {domain!r} by {old.__module__}.{old.__qualname__}"
            )
        table[name] = cls
        cls.name = name
        cls.domain = domain
        return cls

    return deco


def strategy_names(domain: str | None = None) -> list[str]:
    """Registered strategy names for ``domain`` (all domains' names when ``domain`` is None)."""
    if domain is None:
        return sorted({n for table in STRATEGIES.values() for n in table})
    return sorted(STRATEGIES.get(domain, {}))


def get_strategy_class(name: str, domain: str = "chem") -> type["Strategy"]:
    """Look up a registered strategy class, with an error that lists the valid choices."""
    if domain not in STRATEGIES:
        raise ValueError(
            f"unknown domain {domain!r} for pre-training strategies; registered domains: {sorted(STRATEGIES)}"
        )
    table = STRATEGIES[domain]
    if name not in table:
        raise ValueError(
            f"unknown pre-training strategy {name!r} for domain {domain!r}; choose one of {sorted(table)}"
        )
    return table[name]


def strategy_option_names(cls: type["Strategy"]) -> list[str]:
    """The keyword options a strategy's ``__init__`` accepts besides ``encoder_kwargs``."""
    params = inspect.signature(cls.__init__).parameters
    return [
        p.name
        for p in params.values()
        if p.name not in ("self", "encoder_kwargs") and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


#: Hu et al.'s pre-training recipe, the defaults of every strategy without its own ``training_defaults``.
PAPER_TRAINING_DEFAULTS: dict[str, Any] = {"epochs": 100, "batch_size": 256, "lr": 1e-3, "decay": 0.0}


def training_default(cls: type["Strategy"], option: str) -> Any:
    """The default of training ``option`` (``epochs``, ``batch_size``, ``lr``, ``decay``) for strategy class
    ``cls``: its own ``training_defaults`` entry, else the paper's (:data:`PAPER_TRAINING_DEFAULTS`)."""
    if option not in PAPER_TRAINING_DEFAULTS:
        raise KeyError(f"unknown training option {option!r}; expected one of {sorted(PAPER_TRAINING_DEFAULTS)}")
    return getattr(cls, "training_defaults", {}).get(option, PAPER_TRAINING_DEFAULTS[option])


def build_strategy(name: str, domain: str = "chem", encoder_kwargs: dict | None = None, **options: Any) -> "Strategy":
    """Instantiate strategy ``name`` of ``domain`` with an encoder built from ``encoder_kwargs``.

    Options the strategy does not accept are an error (naming the accepted ones), so a typo in an
    option never silently falls back to a default.
    """
    cls = get_strategy_class(name, domain)
    accepted = strategy_option_names(cls)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"strategy {name!r} ({domain}) does not take option(s) {unknown}; it accepts {accepted}")
    return cls(dict(encoder_kwargs or {}), **options)


class Strategy(torch.nn.Module):
    """Base class: an encoder plus a self-supervised (or supervised) objective.

    Subclasses set ``self.gnn`` (the encoder, a :class:`gnnpretrain.nn.GNN`) and implement
    :meth:`forward`, which receives a collated batch already on the training device and returns
    ``(loss, metrics)``. ``metrics`` maps names to Python floats; the loop averages them over the
    steps of an epoch, except names starting with ``num_``, which are counts and are summed.
    """

    name: ClassVar[str] = "base"
    domain: ClassVar[str] = "chem"
    #: True for strategies trained on labels (then the default dataset is a labelled one).
    needs_labels: ClassVar[bool] = False
    #: The ``--dataset`` used when none is given.
    default_dataset: ClassVar[str] = "zinc"
    #: Training options this method's official recipe uses where they differ from or fix the paper's
    #: (``epochs``, ``batch_size``, ``lr``, ``decay``); ``scripts/pretrain.py`` applies them when the flag
    #: is not given (:func:`training_default`). Empty: the paper's 100 epochs, batch 256, lr 1e-3, decay 0.
    training_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, encoder_kwargs: dict, **options: Any) -> None:
        super().__init__()
        self.encoder_kwargs = dict(encoder_kwargs)
        self.options = dict(options)

    @property
    def encoder(self) -> torch.nn.Module:
        """The network that is saved (``model.pth``) and later fine-tuned."""
        return self.gnn

    def config(self) -> dict:
        """What ``config.json`` records to rebuild this strategy (and its encoder)."""
        return {
            "strategy": self.name,
            "domain": self.domain,
            "encoder": dict(self.encoder_kwargs),
            "strategy_options": dict(self.options),
        }

    def forward(self, batch, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:  # pragma: no cover
        raise NotImplementedError


def make_encoder(encoder_kwargs: dict, **override: Any) -> torch.nn.Module:
    """Build a :class:`gnnpretrain.nn.GNN` from keyword arguments (imported lazily: the nn module
    is developed separately and only needed when a strategy is actually built)."""
    from gnnpretrain.nn import GNN

    kw = dict(encoder_kwargs)
    kw.update(override)
    return GNN(**kw)


def encoder_out_dim(gnn: torch.nn.Module) -> int:
    """Width of the node embeddings the encoder returns (``GNN.out_dim``)."""
    out = getattr(gnn, "out_dim", None)
    if out is None:
        raise AttributeError(f"{type(gnn).__name__} has no out_dim attribute (see docs/INTERFACES.md, Encoders)")
    return int(out)


def cycle_index(num: int, shift: int, device: torch.device | str | None = None) -> Tensor:
    """Indices ``(i + shift) mod num``: pairs each item with another item of the batch.

    This is the reference's ``cycle_index`` for ``0 < shift < num``; the modulo also keeps it defined
    for larger shifts (the reference's slicing is not).
    """
    if num <= 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    return (torch.arange(num, device=device) + shift) % num


def signed_accuracy(pos: Tensor, neg: Tensor) -> float:
    """Balanced accuracy of a binary scorer: the mean of (positives scored > 0) and (negatives < 0)."""
    parts = []
    if pos.numel():
        parts.append((pos > 0).float().mean())
    if neg.numel():
        parts.append((neg < 0).float().mean())
    if not parts:
        return float("nan")
    return float(torch.stack(parts).mean())


def full_precision(t: Tensor) -> Tensor:
    """``t`` in float32 if autocast made it bf16/fp16 (losses are computed in full precision); float32 and
    float64 stay as they are (the fidelity tests run in float64)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def zero_loss(module: torch.nn.Module) -> Tensor:
    """A zero loss that still touches every parameter.

    Used for a batch with nothing to learn from (e.g. no graph has a context): every parameter gets a
    (zero) gradient, so DistributedDataParallel's all-reduce stays in step across ranks.
    """
    total = None
    for p in module.parameters():
        if p.requires_grad:
            term = p.sum() * 0.0
            total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total
