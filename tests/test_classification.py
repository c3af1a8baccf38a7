"""The classifier: mean pooling, encoding, batches, resume, save and reload, classify_reviews."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, BertConfig

from helpers.batching import pad_batch, training_batches
from helpers.classification import (
    BertForReviewClassification,
    classification_loss,
    classify_reviews,
    encode,
    encode_read_whole,
    predict_logits,
    predict_probabilities,
    predict_probabilities_windowed,
    scoring_batch_size,
    train_short_classifier,
)
from helpers.models import minilm_path, save_atomically
from helpers.profile import get_profile
from helpers.training import TrainConfig, TrainingLoop


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_path())


def tiny_classifier(vocab_size: int = 30_522) -> BertForReviewClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2)
    return BertForReviewClassification(config)


REVIEWS = [f"{'A wonderful, moving film.' if i % 2 else 'Dull and far too long.'} Review number {i}." * (1 + i % 3)
           for i in range(24)]
LABELS = [i % 2 for i in range(24)]


def test_mean_pooling_ignores_padding():
    model = tiny_classifier().eval()
    short, long = [101, 2204, 3185, 102], [101, 2204, 3185, 2001, 2307, 102]
    batch = pad_batch([short, long], pad_id=0)
    alone = model(**pad_batch([short], pad_id=0)).logits
    torch.testing.assert_close(model(**batch).logits[0], alone[0])
    assert model.bert.pooler is None  # nothing DDP would find without a gradient


def test_forward_passes_berts_options_on_and_rejects_unknown_arguments():
    model = tiny_classifier().eval()
    batch = pad_batch([[101, 2204, 3185, 102], [101, 2204, 102]], pad_id=0)
    plain = model(**batch)
    typed = model(**batch, token_type_ids=torch.ones_like(batch["input_ids"]))
    assert not torch.allclose(plain.logits, typed.logits), "token_type_ids reach the embeddings"
    model.set_attn_implementation("eager")  # SDPA computes no weights to return
    both = model(**batch, output_attentions=True, output_hidden_states=True)
    assert len(both.attentions) == 2 and both.attentions[0].shape == (2, 2, 4, 4)
    assert len(both.hidden_states) == 3 and plain.attentions is None
    torch.testing.assert_close(model(input_ids=batch["input_ids"][:1]).logits, plain.logits[:1])  # mask optional
    with pytest.raises(TypeError, match="pixel_values"):
        model(**batch, pixel_values=torch.zeros(1))
    with pytest.raises(ValueError, match="always returns a SequenceClassifierOutput"):
        model(**batch, return_dict=False)


def test_encode_keeps_head_and_tail_within_max_length(tokenizer):
    text = "first " + "middle " * 100 + "last"
    (ids,) = encode(tokenizer, [text], max_length=16)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert len(ids) == 16 and tokens[:2] == ["[CLS]", "first"] and tokens[-2:] == ["last", "[SEP]"]
    with pytest.raises(ValueError, match="empty"):
        encode(tokenizer, [], max_length=16)


def test_windowed_scoring_averages_each_reviews_window_logits(tokenizer):
    model = tiny_classifier().eval()
    texts = ["A gem.", "first " + "middle " * 100 + "last", "Dull."]
    windowed = encode_read_whole(tokenizer, texts, max_length=48)
    assert [len(review) for review in windowed] == [1, 3, 1]
    found = predict_probabilities_windowed(model, windowed, tokenizer.pad_token_id)
    logits = predict_logits(model, windowed[1], tokenizer.pad_token_id).mean(axis=0)
    assert found[1] == pytest.approx(float(torch.from_numpy(logits).softmax(dim=-1)[1]), abs=1e-6)
    one_window = predict_probabilities(model, [windowed[0][0], windowed[2][0]], tokenizer.pad_token_id)
    np.testing.assert_allclose(found[[0, 2]], one_window, atol=1e-6)  # a short review: the same as head+tail
    with pytest.raises(ValueError, match="empty"):
        encode_read_whole(tokenizer, [], max_length=48)


def test_pad_batch_pads_to_the_longest_and_masks_padding():
    batch = pad_batch([[5, 6, 7], [8]], pad_id=0, labels=[1, 0])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]] and batch["labels"].tolist() == [1, 0]


def test_training_batches_cover_every_review_once_per_epoch(tokenizer):
    encoded = encode(tokenizer, REVIEWS, max_length=32)
    for_epoch = training_batches(encoded, LABELS, batch_size=5, pad_id=0, seed=0)
    epochs = [[tuple(row) for b in for_epoch(e) for row in b["input_ids"].tolist()] for e in (0, 1)]
    assert all(len(rows) == 24 for rows in epochs) and epochs[0] != epochs[1]
    with pytest.raises(ValueError, match="24 encoded reviews but 3 labels"):
        training_batches(encoded, LABELS[:3], batch_size=5, pad_id=0, seed=0)


def test_resumed_classifier_training_matches_an_unbroken_one(tokenizer, tmp_path):
    batches = training_batches(encode(tokenizer, REVIEWS, max_length=32), LABELS, 4, tokenizer.pad_token_id, seed=1)
    config = TrainConfig(steps=10, learning_rate=1e-3, log_every=1, checkpoint_every=3)  # 6 batches per epoch
    unbroken = TrainingLoop(tiny_classifier(), classification_loss, config)
    unbroken.fit(batches)

    def interrupt(history):
        if history[-1]["step"] == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        TrainingLoop(tiny_classifier(), classification_loss, config,
                     checkpoint_dir=tmp_path).fit(batches, on_log=interrupt)
    resumed = TrainingLoop(tiny_classifier(), classification_loss, config, checkpoint_dir=tmp_path)
    resumed.fit(batches)  # from the checkpoint at step 6, the start of epoch 1
    for a, b in zip(resumed.model.parameters(), unbroken.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_saved_and_reloaded_classifier_predicts_identically(tokenizer, tmp_path):
    model = tiny_classifier()
    encoded = encode(tokenizer, REVIEWS, max_length=32)
    before = predict_probabilities(model, encoded, tokenizer.pad_token_id, batch_size=7)
    save_atomically(model, tokenizer, tmp_path / "classifier")
    save_atomically(model, tokenizer, tmp_path / "classifier")  # replacing an existing folder works too
    reloaded = BertForReviewClassification.from_pretrained(tmp_path / "classifier")
    assert np.array_equal(predict_probabilities(reloaded, encoded, tokenizer.pad_token_id, batch_size=7), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classifier"]  # no .partial or .old left behind


def test_classify_reviews_keeps_order_and_rejects_blank_input(tokenizer):
    model = tiny_classifier()
    answers = classify_reviews(model, tokenizer, REVIEWS[:5], max_length=32, batch_size=2)
    one_by_one = [classify_reviews(model, tokenizer, [r], max_length=32)[0] for r in REVIEWS[:5]]
    assert [label for label, _ in answers] == [label for label, _ in one_by_one]
    # fp32; padding to another length changes the order of the sums: a few ulps of each logit, 1e-5 is ample
    assert np.allclose([p for _, p in answers], [p for _, p in one_by_one], atol=1e-5)
    assert all(label in ("negative", "positive") and 0.5 <= p <= 1 for label, p in answers)
    with pytest.raises(ValueError, match="Review 2 of 2 is blank"):
        classify_reviews(model, tokenizer, ["fine", "   "], max_length=32)
    with pytest.raises(ValueError, match="Nothing to classify"):
        classify_reviews(model, tokenizer, [], max_length=32)


def test_classify_reviews_reads_a_long_review_whole(tokenizer):
    model = tiny_classifier()
    text = "A wonderful, moving film. " * 3 + "Dull and far too long. " * 12 + "I loved it."
    ((label, probability),) = classify_reviews(model, tokenizer, [text], max_length=32)
    windowed = encode_read_whole(tokenizer, [text], max_length=32)
    assert len(windowed[0]) > 2  # the middle is a window of its own
    whole = predict_probabilities_windowed(model, windowed, tokenizer.pad_token_id)[0]
    head_tail = predict_probabilities(model, encode(tokenizer, [text], max_length=32), tokenizer.pad_token_id)[0]
    assert (probability if label == "positive" else 1 - probability) == pytest.approx(whole, abs=1e-6)
    assert abs(whole - head_tail) > 1e-4  # head+tail would have dropped the middle


def test_scoring_halves_the_batch_on_out_of_memory(tokenizer, capsys):
    model = tiny_classifier()
    encoded = encode(tokenizer, REVIEWS, max_length=32)
    expected = predict_probabilities(model, encoded, tokenizer.pad_token_id, batch_size=4)
    forward = model.forward

    def fits_four(**batch):  # pretend the card holds at most four reviews at once
        if len(batch["input_ids"]) > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(**batch)

    model.forward = fits_four
    got = predict_probabilities(model, encoded, tokenizer.pad_token_id, batch_size=16)
    np.testing.assert_allclose(got, expected, atol=1e-6)  # fp32 probabilities, other batch sizes: within ulps
    assert "batches of 8 reviews" in capsys.readouterr().out
    model.forward = lambda **batch: (_ for _ in ()).throw(torch.OutOfMemoryError())
    with pytest.raises(torch.OutOfMemoryError, match="scoring a single review of .* tokens: use a smaller max_length"):
        predict_probabilities(model, encoded, tokenizer.pad_token_id, batch_size=2)


def test_scoring_batches_by_default_are_sized_for_the_models_device(tokenizer):
    assert scoring_batch_size(torch.device("cpu")) == 16  # benchmarks/results/batching.md: faster than 64 on 2 cores
    assert scoring_batch_size(torch.device("cuda", 0)) == 64  # a GPU is kept busy by larger batches
    model = tiny_classifier()
    encoded = encode(tokenizer, REVIEWS * 4, max_length=32)  # more reviews than one CPU batch
    sizes, forward = [], model.forward
    model.forward = lambda **batch: sizes.append(len(batch["input_ids"])) or forward(**batch)
    found = predict_probabilities(model, encoded, tokenizer.pad_token_id)
    assert max(sizes) == 16 and sum(sizes) == len(encoded)
    model.forward = forward
    np.testing.assert_allclose(found, predict_probabilities(model, encoded, tokenizer.pad_token_id,
                                                            batch_size=len(encoded)), atol=1e-6)


def test_a_stand_in_classifier_is_trained_when_notebook_04s_is_missing(tokenizer, tmp_path, clean_env):
    folder = tmp_path / "tiny"
    tiny_classifier().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    clean_env.setenv("TUTORIAL_MODEL", str(folder))
    profile = get_profile("cpu")
    train = Dataset.from_dict({"text": REVIEWS, "label": LABELS})
    before = tiny_classifier().state_dict()
    model, its_tokenizer = train_short_classifier(profile, train, max_length=32, steps=2)
    assert next(model.parameters()).device.type == "cpu" and not model.training
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), "it must have trained"
    assert its_tokenizer.name_or_path == str(folder), "the tokenizer comes with the model it was trained from"
    reloaded = tmp_path / "stand-in"
    save_atomically(model, its_tokenizer, reloaded)
    again = BertForReviewClassification.from_pretrained(reloaded).eval()
    encoded = encode(its_tokenizer, REVIEWS, max_length=32)
    saved, trained = again.state_dict(), model.state_dict()
    assert saved.keys() == trained.keys() and all(torch.equal(saved[k], trained[k]) for k in saved), \
        "the file holds exactly the trained weights"
    # The same weights, scored the same way (predict_probabilities runs the fused kernel whichever the
    # model trained with) in one process: the same computation, bit for bit.
    np.testing.assert_array_equal(predict_probabilities(again, encoded, its_tokenizer.pad_token_id),
                                  predict_probabilities(model, encoded, its_tokenizer.pad_token_id),
                                  err_msg="notebook 06 reloads it")


def test_new_classifier_follows_the_profile_and_freezes_the_token_embeddings(clean_env):
    import dataclasses

    from helpers.classification import classifier_options, new_classifier

    cpu = get_profile("cpu")
    options = classifier_options(cpu)
    assert options["attention_probs_dropout_prob"] == 0.0 and options["attn_implementation"] == cpu.attention_kernel
    model = new_classifier(cpu)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"bert.embeddings.word_embeddings.weight"} == {n for n in frozen if cpu.freeze_word_embeddings}
    assert model.config.hidden_dropout_prob == cpu.dropout and model.config.id2label[1] == "positive"
    again = new_classifier(cpu)
    assert torch.equal(model.classifier.weight, again.classifier.weight), "the head is drawn from the seed"
    assert not torch.equal(model.classifier.weight, new_classifier(cpu, seed=1).classifier.weight)
    trained = new_classifier(dataclasses.replace(cpu, freeze_word_embeddings=False))
    assert all(p.requires_grad for p in trained.parameters())


def test_fine_tune_leaves_frozen_weights_alone_and_logs_evaluations(tokenizer):
    import dataclasses

    from helpers.classification import fine_tune

    profile = dataclasses.replace(get_profile("cpu"), batch_size=4, precision="fp32", epochs=1)
    model = tiny_classifier()
    model.bert.embeddings.word_embeddings.requires_grad_(False)
    before = model.bert.embeddings.word_embeddings.weight.clone()
    head = model.classifier.weight.clone()
    encoded = encode(tokenizer, REVIEWS, 32)
    model, history = fine_tune(model, encoded, LABELS, tokenizer.pad_token_id, profile,
                               evaluate=lambda m: {"accuracy": 0.5})
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, before)
    assert not torch.equal(model.classifier.weight, head)
    assert history[-1]["step"] == 6  # 24 reviews in batches of 4, one epoch
    assert [h["step"] for h in history if "accuracy" in h] == [2, 4, 6]  # every ceil(6 / 4) = 2 steps
    _, history = fine_tune(tiny_classifier(), encoded, LABELS, tokenizer.pad_token_id, profile, steps=9,
                           evaluate=lambda m: {"accuracy": 0.5})
    assert [h["step"] for h in history if "accuracy" in h] == [3, 6, 9]  # at most four: 9 // 4 gave 2, 4, 6, 8, 9
