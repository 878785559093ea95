"""Seed-level statistics for strategy comparisons: mean ± std and the negative-transfer test.

Negative transfer (Hu et al. 2020) = a pre-trained model doing *worse* downstream than the same
architecture trained from scratch. With few seeds a lower mean can be noise, so each cell is tested:
a one-sided Welch t-test (unequal variances, ``scipy.stats.ttest_ind(equal_var=False,
alternative="less")``) of H1 "pre-trained mean < no-pre-training mean" over the per-seed test
ROC-AUCs. Markers:

* ``"↓"``   — below the baseline and significant (p < alpha);
* ``"(↓)"`` — below the baseline but not significant (or too few seeds to test);
* ``""``    — not below the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st

SIGNIFICANT = "↓"
NOT_SIGNIFICANT = "(↓)"


@dataclass(frozen=True)
class TransferTest:
    """Result of comparing one pre-trained cell against its no-pre-training baseline."""

    diff: float  # mean(pretrained) - mean(baseline)
    p_value: float  # one-sided Welch p for "pretrained < baseline"; nan if untestable
    alpha: float
    marker: str  # "↓", "(↓)" or ""
    se: float  # standard error of the difference (ddof=1 per group), nan if a group has < 2 seeds

    @property
    def negative(self) -> bool:
        return self.diff < 0

    @property
    def significant(self) -> bool:
        return self.marker == SIGNIFICANT


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, population std (ddof=0, as the fine-tuning summaries) and count."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan, 0
    return float(arr.mean()), float(arr.std()), int(arr.size)


def negative_transfer(pretrained: Sequence[float], baseline: Sequence[float], alpha: float = 0.05) -> TransferTest:
    """One-sided Welch test of ``mean(pretrained) < mean(baseline)`` and the cell's marker.

    Degenerate cases: with fewer than 2 values in a group the test is undefined (p = nan; a lower
    mean is marked "(↓)"); when both groups have zero variance the difference is exact, so
    p = 0 if it is negative and 1 otherwise.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    a = np.asarray(pretrained, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError(
            f"negative_transfer needs values in both groups, got {a.size} pre-trained and {b.size} baseline"
        )
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        p, se = math.nan, math.nan
    else:
        se = float(math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
        if se == 0.0:
            p = 0.0 if diff < 0 else 1.0
        else:
            p = float(_st.ttest_ind(a, b, equal_var=False, alternative="less").pvalue)
    if diff < 0 and not math.isnan(p) and p < alpha:
        marker = SIGNIFICANT
    elif diff < 0:
        marker = NOT_SIGNIFICANT
    else:
        marker = ""
    return TransferTest(diff=diff, p_value=p, alpha=alpha, marker=marker, se=se)


@dataclass(frozen=True)
class Difference:
    """Pre-trained minus baseline over seeds, with a two-sided Welch t-test (for side-by-side reports)."""

    diff: float
    p_value: float  # two-sided Welch p; nan with fewer than 2 values in a group
    n_a: int
    n_b: int


def welch_difference(a: Sequence[float], b: Sequence[float]) -> Difference:
    """``mean(a) - mean(b)`` and the two-sided Welch t-test p-value (unequal variances).

    Unlike :func:`negative_transfer` (one-sided, "worse than baseline") this asks whether the two
    arms differ at all, which is the honest question for a single side-by-side comparison.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError(f"welch_difference needs values in both groups, got {x.size} and {y.size}")
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        p = math.nan
    elif x.var(ddof=1) == 0.0 and y.var(ddof=1) == 0.0:
        p = 1.0 if diff == 0 else 0.0
    else:
        p = float(_st.ttest_ind(x, y, equal_var=False).pvalue)
    return Difference(diff=diff, p_value=p, n_a=int(x.size), n_b=int(y.size))
