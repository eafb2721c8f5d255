"""Emotion classifier pieces: focal loss, metrics, the labelling rule, save/load on the embedded MiniLM."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ecr_ray.config import EMOTIONS
from ecr_ray.emotion import data, evaluate, predictor
from ecr_ray.emotion import model as emodel


def test_focal_loss_reduces_to_cross_entropy_and_downweights_easy_rows():
    logits = torch.tensor([[4.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0], [0.0, 0.2, 0.0, 0, 0, 0, 0, 0, 0]])
    target = torch.zeros(2, 9)
    target[:, 0] = 1.0
    ce = F.cross_entropy(logits, torch.tensor([0, 0]))
    assert emodel.focal_loss(logits, target, gamma=0.0).item() == pytest.approx(ce.item(), rel=1e-5)
    per_row = [emodel.focal_loss(logits[i : i + 1], target[i : i + 1], gamma=2.0).item() for i in range(2)]
    per_row_ce = [F.cross_entropy(logits[i : i + 1], torch.tensor([0])).item() for i in range(2)]
    # the easy row (p≈0.87) loses far more of its weight than the hard one
    assert per_row[0] / per_row_ce[0] < 0.05 < per_row[1] / per_row_ce[1]
    w = torch.ones(9)
    w[0] = 3.0
    assert emodel.focal_loss(logits, target, 2.0, w).item() == pytest.approx(
        3 * emodel.focal_loss(logits, target, 2.0).item()
    )


def test_recall_at_k_and_evaluate():
    y = data.targets_from_labels([["like", "curious"], ["negative"], ["happy"]])
    p = np.full((3, 9), 0.01, dtype=np.float32)
    p[0, [0, 1]] = [0.5, 0.4]  # both gold in top 2
    p[1, [0, 4]] = [0.6, 0.3]  # negative second
    p[2, [1, 3]] = [0.7, 0.2]  # happy never in the top 2
    assert evaluate.recall_at_k(p, y, 1) == pytest.approx((0.5 + 0 + 0) / 3)
    assert evaluate.recall_at_k(p, y, 2) == pytest.approx((1 + 1 + 0) / 3)
    r = evaluate.evaluate(p, y, threshold=0.1)
    assert r["recall@2"] == pytest.approx(0.6667, abs=1e-4)
    assert r["negative_recall"] == 1.0 and r["per_label"]["happy"]["recall"] == 0.0
    assert r["per_label"]["like"]["precision"] == pytest.approx(0.5)  # predicted on rows 0 and 1, gold on row 0


def test_keep_labels_rule():
    p = np.array([0.05, 0.3, 0.2, 0.0, 0.45, 0, 0, 0, 0])
    assert data.keep_labels(p, 0.1, fallback_top=False) == ["negative", "curious", "happy"]
    flat = np.full(9, 1 / 9)
    assert data.keep_labels(flat * 0.5, 0.1, fallback_top=False) == []
    assert data.keep_labels(flat * 0.5, 0.1, fallback_top=True) == ["like"]


def test_unknown_label_is_an_error():
    with pytest.raises(ValueError, match="row 1: unknown emotion label 'joyous'"):
        data.targets_from_labels([["like"], ["joyous"]])


def test_class_weights_lift_rare_labels():
    y = data.targets_from_labels([["like"]] * 8 + [["negative"]] * 2)
    w = data.class_weights(y, 0.5)
    assert w.mean() == pytest.approx(1.0) and w[EMOTIONS.index("negative")] > w[EMOTIONS.index("like")]


def test_minilm_train_steps_save_load_roundtrip(tmp_path):
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    from ecr_ray.hub import resolve

    tok = AutoTokenizer.from_pretrained(resolve("minilm"))
    model = emodel.EmotionClassifier(resolve("minilm"))
    texts = ["I loved that movie so much!", "Thanks, bye!", "I hated it, boring.", "What is it about?"]
    y = torch.tensor(data.targets_from_labels([["like"], ["grateful"], ["negative"], ["curious"]]))
    enc = tok(texts, padding=True, return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = emodel.focal_loss(model(enc["input_ids"], enc["attention_mask"]), y, 2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5
    emodel.save_classifier(model, tok, tmp_path / "m", {"max_length": 32})
    pred = predictor.EmotionPredictor.from_dir(tmp_path / "m")
    model.eval()
    probs = pred.predict(texts)
    assert probs.shape == (4, 9) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    with torch.no_grad():
        direct = torch.softmax(model(enc["input_ids"], enc["attention_mask"]), -1).numpy()
    np.testing.assert_allclose(probs, direct, atol=1e-5)
    assert (probs.argmax(1) == y.numpy().argmax(1)).all()


def test_predictor_missing_dir_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_emotion"):
        predictor.EmotionPredictor.from_dir(tmp_path)
