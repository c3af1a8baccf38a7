"""The TF-IDF anchor fitted on every training review: validation reviews and their duplicates left out."""

from __future__ import annotations

from helpers.baseline import FULL_TRAIN_GRID, full_train_baseline


def test_the_full_train_baseline_leaves_out_the_validation_reviews_and_their_duplicates():
    positive = ["a wonderful moving film", "great acting and a great story", "loved it, wonderful", "superb film"]
    negative = ["a dull boring film", "awful acting and a dull story", "hated it, boring", "terrible film"]
    validation_texts, validation_labels = ["wonderful great story", "boring awful film"], [1, 0]
    texts = positive * 5 + negative * 5 + validation_texts * 2  # the official split holds duplicates
    labels = [1] * 20 + [0] * 20 + validation_labels * 2
    model, used = full_train_baseline(texts, labels, validation_texts, validation_labels)
    assert used == 40, "the four copies of validation reviews are not trained on"
    assert model.named_steps["logistic"].C in FULL_TRAIN_GRID
    assert list(model.predict(["a wonderful film", "a boring film"])) == [1, 0]
