"""The fine-tuning metric and loss: hand computations, OGB's Evaluator, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ogb.graphproppred import Evaluator

from gnnpretrain.metrics import NoValidTaskError, masked_bce_with_logits, roc_auc_multitask

nan = float("nan")


def test_hand_computation_with_missing_labels_and_single_class_task():
    # task 0: labelled entries (rows 0,1,3,4): labels 1,0,1,0 scores .9,.2,.1,.8 ->
    #   positives {.9,.1}, negatives {.2,.8}: pairs (.9>.2) (.9>.8) (.1<.2) (.1<.8) -> 2/4 = 0.5
    # task 1: labelled rows 0,2,3: labels 0,1,1 with scores .1,.6,.7 -> both positives above the
    #   negative: 2/2 = 1.0
    # task 2: only class 1 among labelled entries -> skipped (nan), not part of the mean
    y = np.array([
        [1, 0, 1],
        [0, nan, nan],
        [nan, 1, 1],
        [1, 1, nan],
        [0, nan, 1],
    ])
    s = np.array([
        [.9, .1, .5],
        [.2, .9, .5],
        [.5, .6, .5],
        [.1, .7, .5],
        [.8, .0, .5],
    ])
    mean, per_task = roc_auc_multitask(y, s)
    assert per_task[0] == pytest.approx(0.5)
    assert per_task[1] == pytest.approx(1.0)
    assert math.isnan(per_task[2])
    assert mean == pytest.approx(0.75)


def test_ties_count_half_and_torch_input():
    y = torch.tensor([[1.], [0.], [1.], [0.]])
    s = torch.tensor([[.5], [.5], [.9], [.1]])
    # pairs: (.5 vs .5) tie=.5, (.5>.1)=1, (.9>.5)=1, (.9>.1)=1 -> 3.5/4
    mean, per_task = roc_auc_multitask(y, s)
    assert mean == pytest.approx(0.875)
    assert per_task == [pytest.approx(0.875)]


@pytest.mark.parametrize("name,num_tasks", [("ogbg-molhiv", 1), ("ogbg-moltox21", 12)])
def test_matches_ogb_evaluator(name, num_tasks):
    rng = np.random.default_rng(0)
    n = 300
    y = (rng.random((n, num_tasks)) < 0.3).astype(float)
    y[rng.random((n, num_tasks)) < 0.25] = np.nan  # missing labels
    score = y * 0.7 + rng.normal(size=(n, num_tasks))  # informative but noisy
    score = np.where(np.isnan(score), rng.normal(size=(n, num_tasks)), score)
    if num_tasks > 1:
        y[:, 3] = np.where(np.isnan(y[:, 3]), np.nan, 1.0)  # a single-class task: both must skip it
    ours, per_task = roc_auc_multitask(y, score)
    ref = Evaluator(name).eval({"y_true": y, "y_pred": score})["rocauc"]
    assert ours == pytest.approx(ref, abs=1e-12)
    assert 0.6 < ours < 0.95
    if num_tasks > 1:
        assert math.isnan(per_task[3])
        assert sum(not math.isnan(v) for v in per_task) == num_tasks - 1


def test_no_valid_task_is_a_clear_error():
    with pytest.raises(NoValidTaskError, match="both classes"):
        roc_auc_multitask(np.array([[1.], [1.], [nan]]), np.array([[.1], [.2], [.3]]))
    with pytest.raises(NoValidTaskError, match="empty"):
        roc_auc_multitask(np.zeros((0, 2)), np.zeros((0, 2)))


def test_bad_input_messages():
    with pytest.raises(ValueError, match="same shape"):
        roc_auc_multitask(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"0, 1 or nan"):
        roc_auc_multitask(np.array([[-1.], [1.]]), np.array([[.1], [.2]]))
    with pytest.raises(ValueError, match="nan/inf"):
        roc_auc_multitask(np.array([[0.], [1.]]), np.array([[nan], [.2]]))


def test_masked_loss_ignores_nan():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    y = torch.tensor([[1.0, nan], [0.0, nan]])
    loss = masked_bce_with_logits(logits, y)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([2.0, 0.5]), torch.tensor([1.0, 0.0])
    )
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[:, 1].abs().sum() == 0  # missing labels give no gradient
    assert logits.grad[:, 0].abs().sum() > 0
    # changing the logits at missing positions changes nothing
    other = logits.detach().clone()
    other[:, 1] = torch.tensor([100.0, -100.0])
    assert masked_bce_with_logits(other, y).item() == pytest.approx(loss.item())


def test_masked_loss_all_missing_is_zero_and_backpropagates():
    logits = torch.randn(3, 2, requires_grad=True)
    loss = masked_bce_with_logits(logits, torch.full((3, 2), nan))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and (logits.grad == 0).all()
