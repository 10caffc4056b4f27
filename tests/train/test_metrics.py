import pytest
import torch

from mediaformers.train.metrics import confusion_matrix, mean_average_precision, topk_accuracy


def test_average_precision_by_hand():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    target = torch.tensor([[1, 0], [0, 0], [1, 0]])
    out = mean_average_precision(scores, target)
    assert out["per_class_AP"][0] == pytest.approx((1 + 2 / 3) / 2) and out["per_class_AP"][1] is None
    assert out["mAP"] == pytest.approx((1 + 2 / 3) / 2)


def test_topk_and_confusion():
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    assert topk_accuracy(logits, torch.tensor([1, 2]), ks=(1, 2)) == {"top1": 0.5, "top2": 1.0}
    assert confusion_matrix(logits.argmax(-1), torch.tensor([1, 2]), 3) == [[0, 0, 0], [1, 0, 0], [0, 0, 1]]
