import pytest
import torch

from mediaformers.train.metrics import confusion_matrix, mean_average_precision, retrieval_recall, topk_accuracy


def test_average_precision_by_hand():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    target = torch.tensor([[1, 0], [0, 0], [1, 0]])
    out = mean_average_precision(scores, target)
    assert out["per_class_AP"][0] == pytest.approx((1 + 2 / 3) / 2) and out["per_class_AP"][1] is None
    assert out["mAP"] == pytest.approx((1 + 2 / 3) / 2)


def test_topk_confusion_and_recall():
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    assert topk_accuracy(logits, torch.tensor([1, 2]), ks=(1, 2)) == {"top1": 0.5, "top2": 1.0}
    assert confusion_matrix(logits.argmax(-1), torch.tensor([1, 2]), 3) == [[0, 0, 0], [1, 0, 0], [0, 0, 1]]
    a = torch.eye(3)
    r = retrieval_recall(a, a[[1, 0, 2]], ks=(1, 5))
    assert r["a2b_R@1"] == pytest.approx(1 / 3) and r["b2a_R@1"] == pytest.approx(1 / 3) and r["a2b_R@5"] == 1.0
