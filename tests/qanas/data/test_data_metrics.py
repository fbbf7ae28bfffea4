"""ConfusionMatrix against hand-computed matrices and an independent loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qanas.data import ConfusionMatrix


def test_hand_computed_matrix_with_ignore():
    target = np.array([[0, 0, 1, 1],
                       [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1],
                     [2, 0, 2, 1]])  # the two ignored pixels must not count
    cm = ConfusionMatrix(3, ignore_index=255, class_names=("a", "b", "c"))
    cm.update(pred, target)
    expected = np.array([[1, 1, 0],   # target 0: one right, one predicted as 1
                         [0, 2, 0],   # target 1: both right
                         [1, 0, 1]])  # target 2: one right, one predicted as 0
    np.testing.assert_array_equal(cm.matrix, expected)
    # IoU_0 = 1 / (2 + 2 - 1), IoU_1 = 2 / (2 + 3 - 2), IoU_2 = 1 / (2 + 1 - 1)
    np.testing.assert_allclose(cm.per_class_iou(), [1 / 3, 2 / 3, 1 / 2])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)
    d = cm.to_dict()
    assert d["num_pixels"] == 6
    assert d["per_class_iou"]["b"] == pytest.approx(2 / 3)
    assert d["miou"] == pytest.approx(cm.miou())


def test_absent_class_is_nan_and_excluded_from_the_mean():
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    iou = cm.per_class_iou()
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert cm.miou() == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert cm.to_dict()["per_class_iou"]["3"] is None


def test_class_only_predicted_counts_as_zero_iou():
    cm = ConfusionMatrix(3)
    cm.update(np.array([2, 1]), np.array([0, 1]))
    np.testing.assert_allclose(cm.per_class_iou(), [0.0, 1.0, 0.0])
    assert cm.miou() == pytest.approx(1 / 3)


def test_logits_are_argmaxed_and_batches_accumulate():
    target = torch.tensor([[[0, 1], [1, 255]]])  # [N=1, H=2, W=2]
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1, 0, 1] = 1.0  # predict class 1 only at (0, 1)
    cm = ConfusionMatrix(2)
    cm.update(logits, target)
    cm.update(target.clamp(max=1), target)  # a perfect second batch
    np.testing.assert_array_equal(cm.matrix, [[2, 0], [1, 3]])


def test_empty_and_fully_ignored_batches():
    cm = ConfusionMatrix(2)
    assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())
    cm.update(np.array([0, 1]), np.array([255, 255]))
    assert cm.matrix.sum() == 0
    assert cm.to_dict()["miou"] is None


def test_merge_and_reset():
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    a.update(np.array([0]), np.array([0]))
    b.update(np.array([1]), np.array([0]))
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, [[1, 1], [0, 0]])
    a.reset()
    assert a.matrix.sum() == 0
    with pytest.raises(ValueError, match="cannot merge a 3-class"):
        a.merge(ConfusionMatrix(3))


@pytest.mark.parametrize("pred, target, match", [
    (np.array([0, 5]), np.array([0, 1]), "prediction holds class id 5, outside 0..2"),
    (np.array([0, 1]), np.array([0, 7]), "target holds class id 7"),
    (np.array([0, 1, 2]), np.array([0, 1]), "does not match target shape"),
])
def test_bad_inputs_name_the_value(pred, target, match):
    with pytest.raises(ValueError, match=match):
        ConfusionMatrix(3).update(pred, target)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)),
                                   min_size=1, max_size=60))
def test_matches_a_plain_loop_reference(num_classes, pairs):
    ignore = 255
    target = np.array([t if t < num_classes else ignore for t, _ in pairs])
    pred = np.array([p % num_classes for _, p in pairs])
    cm = ConfusionMatrix(num_classes, ignore_index=ignore)
    cm.update(pred, target)
    ref = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(target, pred, strict=True):
        if t != ignore:
            ref[t, p] += 1
    np.testing.assert_array_equal(cm.matrix, ref)
    for c in range(num_classes):
        tp = ref[c, c]
        union = ref[c].sum() + ref[:, c].sum() - tp
        got = cm.per_class_iou()[c]
        if union == 0:
            assert math.isnan(got)
        else:
            assert got == pytest.approx(tp / union)
