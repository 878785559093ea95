"""Compatibility module (kept for one release): the fused engine under its old import path.

The code now lives in :mod:`gnnpretrain.train.fused` (``store``: flat training tensors; ``group``:
one stacked computation with its state file and deadline; ``members``: grouping and worker
processes); new code imports from there.
"""

from __future__ import annotations

from gnnpretrain.train.fused import *  # noqa: F401,F403
from gnnpretrain.train.fused import __all__  # noqa: F401
