"""Notebook 07's helpers: integrated gradients, deletion curves, behaviour tests, calibration, distillation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from captum.attr import LayerIntegratedGradients
from transformers import BertConfig

from helpers.batching import pad_batch
from helpers.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
    scaled_probability,
)
from helpers.checklist import Check, failure_counts, failure_rates, failures, fill, with_typos
from helpers.classification import BertForReviewClassification, fine_tune, predict_logits, predict_probabilities
from helpers.distillation import distillation_loss, student_from_teacher
from helpers.explain import (
    attention_maps,
    attention_received,
    attention_rollout,
    delete_positions,
    deletion_drops,
    gradient_x_input,
    integrated_gradients,
    logit_margin,
    ranking,
)
from helpers.profile import get_profile

IDS = [101, 2023, 3185, 2001, 2307, 1998, 2200, 6057, 102]


def tiny_classifier(layers: int = 2, kernel: str = "eager") -> BertForReviewClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30_522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2, attn_implementation=kernel)
    return BertForReviewClassification(config).eval()


def linear_margin(model: BertForReviewClassification, weight: torch.Tensor) -> torch.nn.Module:
    """Return a model with `model`'s embeddings whose margin is linear in the token vectors: x @ weight, summed."""

    class Linear(torch.nn.Module):
        bert = model.bert

        def forward(self, inputs_embeds):
            margin = inputs_embeds @ weight  # (B, T)
            return type("Out", (), {"logits": torch.stack([torch.zeros(len(margin)), margin.sum(dim=1)], dim=1)})

    return Linear()


def test_forward_takes_token_vectors_instead_of_ids():
    model = tiny_classifier()
    ids = torch.tensor([IDS])
    vectors = model.bert.embeddings.word_embeddings(ids)
    torch.testing.assert_close(model(inputs_embeds=vectors).logits, model(input_ids=ids).logits)
    assert logit_margin(model, vectors).shape == (1,)


def test_integrated_gradients_add_up_and_match_captum():
    model = tiny_classifier()
    attributions, change = integrated_gradients(model, IDS, baseline_id=0, steps=64, chunk=10)
    assert attributions.shape == (len(IDS),)
    assert attributions[0] == 0 and attributions[-1] == 0  # [CLS] and [SEP] are the same in the baseline
    assert abs(attributions.sum() - change) < 0.01 * abs(change)

    def margin(input_ids):
        return model(input_ids=input_ids).logits @ torch.tensor([-1.0, 1.0])

    baseline = torch.tensor([[IDS[0]] + [0] * (len(IDS) - 2) + [IDS[-1]]])
    captum = LayerIntegratedGradients(margin, model.bert.embeddings.word_embeddings).attribute(
        torch.tensor([IDS]), baselines=baseline, n_steps=64, method="riemann_middle")
    # fp32, the same 64 midpoints summed in another order (Captum's batches): about 1e-7 of attributions near 1
    np.testing.assert_allclose(attributions, captum.sum(dim=-1)[0].detach().numpy(), atol=1e-5)


def test_integrated_gradients_under_bf16_run_in_bf16_and_rank_the_tokens_as_fp32_does():
    """Notebook 07 ranks tokens with attributions computed under the profile's precision (bf16 on such CPUs)."""
    model = tiny_classifier()
    exact, exact_change = integrated_gradients(model, IDS, baseline_id=0, steps=16)
    seen = []
    hook = model.bert.encoder.layer[0].output.dense.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    rounded, rounded_change = integrated_gradients(model, IDS, baseline_id=0, steps=16, precision="bf16")
    hook.remove()
    assert set(seen) == {torch.bfloat16}  # the layers did run in bf16
    assert rounded.dtype == np.float32
    # bf16 keeps 8 significant bits (relative rounding up to 2^-8, about 0.4 %), through two layers: 5 % of the
    # largest attribution is about 13 times that, while a ranking would change only for attributions this close
    scale = np.abs(exact).max()
    np.testing.assert_allclose(rounded, exact, atol=0.05 * scale)
    assert rounded_change == pytest.approx(exact_change, abs=0.05 * abs(exact_change) + 1e-3)
    assert np.argmax(np.abs(rounded)) == np.argmax(np.abs(exact))


def test_integrated_gradients_are_exact_for_a_model_linear_in_its_inputs():
    """With a constant gradient, one step gives the exact attribution: the difference times the weight."""
    model = tiny_classifier()
    weight = torch.randn(32)
    linear = linear_margin(model, weight)

    attributions, change = integrated_gradients(linear, IDS, baseline_id=0, steps=1)
    embed = model.bert.embeddings.word_embeddings
    expected = (embed(torch.tensor(IDS)) - embed(torch.tensor([IDS[0]] + [0] * 7 + [IDS[-1]]))) @ weight
    # a linear margin: one step is exact up to float32 rounding (rtol about 1e-7 per operation, 100x margin)
    np.testing.assert_allclose(attributions, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert change == pytest.approx(float(expected.sum().detach()), rel=1e-5)


def test_attention_received_sums_to_one_whatever_kernel_the_model_runs():
    received = attention_received(tiny_classifier(), IDS)
    assert received.shape == (len(IDS),) and received.sum() == pytest.approx(1.0, abs=1e-5)
    fused = tiny_classifier(kernel="sdpa")  # returns no weights itself: the helper switches it to eager for a moment
    np.testing.assert_allclose(attention_received(fused, IDS), received, atol=1e-6)  # the same weights
    assert fused.config._attn_implementation == "sdpa", "and leaves it as it was"


def test_attention_rankings_take_maps_computed_once():
    model = tiny_classifier(layers=2)
    maps = attention_maps(model, IDS)
    np.testing.assert_array_equal(attention_received(model, IDS, maps), attention_received(model, IDS))
    np.testing.assert_allclose(attention_rollout(model, IDS, maps), attention_rollout(model, IDS), atol=1e-7)
    uniform = torch.full_like(maps, 1.0 / len(IDS))  # maps given are the ones used: no forward pass of its own
    np.testing.assert_allclose(attention_received(model, IDS, uniform), np.full(len(IDS), 1.0 / len(IDS)), atol=1e-7)
    np.testing.assert_allclose(attention_rollout(model, IDS, uniform), np.full(len(IDS), 1.0 / len(IDS)), atol=1e-6)


def test_attention_rollout_follows_the_attention_through_every_layer_with_the_residual():
    model = tiny_classifier(layers=2)
    rolled = attention_rollout(model, IDS)
    assert rolled.shape == (len(IDS),) and rolled.sum() == pytest.approx(1.0, abs=1e-5)
    with torch.no_grad():
        layers = model(input_ids=torch.tensor([IDS]), output_attentions=True).attentions
    first, last = (0.5 * layer[0].mean(dim=0) + 0.5 * torch.eye(len(IDS)) for layer in layers)
    np.testing.assert_allclose(rolled, (last @ first).mean(dim=0).numpy(), atol=1e-6)  # float32 rounding
    np.testing.assert_allclose(attention_rollout(tiny_classifier(kernel="sdpa"), IDS), rolled, atol=1e-6)


def test_scoring_runs_the_fused_kernel_and_gives_the_model_back_as_it_was():
    model = tiny_classifier(kernel="eager")
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(module.config._attn_implementation))
    fused = predict_logits(model, [IDS, IDS[:4]], pad_id=0)
    own = predict_logits(model, [IDS, IDS[:4]], pad_id=0, attention=None)
    assert seen == ["sdpa", "eager"] and model.config._attn_implementation == "eager"
    np.testing.assert_allclose(fused, own, atol=1e-5)  # two kernels, the same attention up to float32 rounding


def test_gradient_x_input_is_each_vector_times_the_weight_for_a_linear_margin():
    """A margin linear in the token vectors, x @ w summed over tokens: token i gets x_i @ w, signs included."""
    model = tiny_classifier()
    weight = torch.randn(32)
    linear = linear_margin(model, weight)

    found = gradient_x_input(linear, IDS)
    expected = model.bert.embeddings.word_embeddings(torch.tensor(IDS)) @ weight
    np.testing.assert_allclose(found, expected.detach().numpy(), rtol=1e-5, atol=1e-6)  # float32 rounding
    assert gradient_x_input(tiny_classifier(), IDS).shape == (len(IDS),)


def test_ranking_and_deletion_leave_cls_and_sep_alone():
    order = ranking(np.array([9.0, 0.1, 0.5, 0.3, 9.0]))
    assert order.tolist() == [2, 3, 1]
    assert delete_positions([101, 5, 6, 7, 102], order[:2]) == [101, 5, 102]


def test_deletion_drops_measure_the_fall_of_the_predicted_class():
    model = tiny_classifier()
    encoded = [IDS, IDS[:5] + [102], IDS[2:]]
    encoded[2][0] = 101
    rankings = [ranking(np.arange(len(ids), dtype=float)) for ids in encoded]
    drops = deletion_drops(model, encoded, rankings, [0.0, 0.5], pad_id=0)
    assert drops.shape == (2, 3)
    np.testing.assert_allclose(drops[0], 0.0)
    before = predict_probabilities(model, encoded, 0)
    after = predict_probabilities(model, [delete_positions(ids, r[:round(0.5 * (len(ids) - 2))])
                                         for ids, r in zip(encoded, rankings)], 0)
    np.testing.assert_allclose(drops[1], np.where(before >= 0.5, before - after, after - before))
    with pytest.raises(ValueError, match="one ranking per review"):
        deletion_drops(model, encoded, rankings[:2], [0.1], pad_id=0)
    np.testing.assert_array_equal(deletion_drops(model, encoded, rankings, [0.0, 0.5], pad_id=0, before=before), drops)
    with pytest.raises(ValueError, match="one per review"):
        deletion_drops(model, encoded, rankings, [0.1], pad_id=0, before=before[:2])


def test_predict_logits_and_probabilities_agree():
    model = tiny_classifier()
    encoded = [IDS, IDS[:4] + [102]]
    logits = predict_logits(model, encoded, 0)
    expected = model(**pad_batch(encoded, 0)).logits.detach().numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-5)  # fp32, padded in other batches: sums in another order
    np.testing.assert_allclose(predict_probabilities(model, encoded, 0),
                               torch.from_numpy(logits).softmax(-1)[:, 1].numpy(), atol=1e-7)


def test_reliability_bins_and_expected_calibration_error():
    probability = np.array([0.5, 0.52, 0.95, 1.0, 0.0, 0.2])
    labels = np.array([1, 1, 1, 0, 0, 1])
    bins = reliability_bins(probability, labels, bins=10)
    assert bins["count"].sum() == 6 and bins["count"][0] == 2 and bins["count"][-1] == 3  # 1.0 and 0.0 in the last
    assert bins["accuracy"][-1] == pytest.approx(2 / 3)
    # confidences 0.5, 0.52, 0.95, 1, 1, 0.8; right: yes, yes, yes, no, yes, no
    expected = (2 * abs(1 - 0.51) + 3 * abs(2 / 3 - (0.95 + 1 + 1) / 3) + 1 * abs(0 - 0.8)) / 6
    assert expected_calibration_error(probability, labels) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one probability per label"):
        reliability_bins(probability, labels[:3])


def test_temperature_scaling_recovers_an_overconfident_models_temperature():
    generator = np.random.default_rng(0)
    true_margins = generator.normal(0, 2, 20_000)
    labels = (generator.random(20_000) < scaled_probability(true_margins, 1.0)).astype(int)
    overconfident = true_margins * 3  # a model three times too sure
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.05)
    calibrated = scaled_probability(overconfident, temperature)
    assert expected_calibration_error(calibrated, labels) < expected_calibration_error(
        scaled_probability(overconfident, 1.0), labels) / 3
    assert np.array_equal(calibrated >= 0.5, overconfident >= 0)
    assert negative_log_likelihood(overconfident, labels, temperature) < negative_log_likelihood(overconfident, labels)
    with pytest.raises(ValueError, match="both classes"):
        fit_temperature(np.ones(5), np.ones(5))


def test_fill_writes_every_combination():
    assert fill("{a} {b}.", a=["x", "y"], b=["1", "2", "3"]) == ["x 1.", "x 2.", "x 3.", "y 1.", "y 2.", "y 3."]


def test_typos_swap_letters_inside_words_only():
    text = "This wonderful movie was really brilliant and moving."
    changed = with_typos(text, seed=1)
    assert changed == with_typos(text, seed=1) and changed != text and len(changed) == len(text)
    for before, after in zip(text.split(), changed.split()):
        assert sorted(before) == sorted(after) and before[0] == after[0] and before[-1] == after[-1]
    assert sum(b != a for b, a in zip(text.split(), changed.split())) <= 3


def keyword_model(texts: list[str]) -> np.ndarray:
    """P(positive) 0.9 if "good" occurs, 0.1 if "bad" does, else 0.5; ignores negation."""
    return np.array([0.9 if "good" in t else 0.1 if "bad" in t else 0.5 for t in texts])


def test_checks_fail_where_the_rule_is_broken():
    negation = Check("negation", "label", [("not good", 0), ("not bad", 1), ("good", 1)])
    assert failures(negation, keyword_model).tolist() == [True, True, False]
    names = Check("names", "invariance", [["Ann is good", "Bob is good"], ["Ann is bad", "Bob is good"]])
    assert failures(names, keyword_model).tolist() == [False, True]
    direction = Check("direction", "direction", [("fine", "fine, good"), ("good", "good. bad"), ("fine", "fine, bad")])
    # P(positive) should not rise: 0.5 -> 0.9 fails; a tie (0.9 -> 0.9, "good" still wins) passes; a fall passes
    assert failures(direction, keyword_model).tolist() == [True, False, False]
    lenient = dataclasses.replace(direction, tolerance=0.5)  # a rise of 0.4 is within a tolerance of 0.5
    assert failures(lenient, keyword_model).tolist() == [False, False, False]
    assert [c.test_type for c in (negation, names, direction)] == ["MFT", "INV", "DIR"]
    rates = failure_rates([negation, names], {"keywords": keyword_model})
    assert rates == {"negation": {"keywords": pytest.approx(2 / 3)}, "names": {"keywords": 0.5}}
    assert failure_counts([negation, names], {"keywords": keyword_model}) == {"negation": {"keywords": 2},
                                                                              "names": {"keywords": 1}}
    with pytest.raises(ValueError, match="tolerance"):
        Check("x", "direction", [("a", "b")], tolerance=1.5)
    with pytest.raises(ValueError, match="Unknown kind"):
        Check("x", "labels", [("a", 1)])
    with pytest.raises(ValueError, match="no cases"):
        Check("x", "label", [])


def test_student_keeps_the_teachers_lower_layers():
    teacher = tiny_classifier(layers=4)
    student = student_from_teacher(teacher, layers=2)
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    taught = teacher.state_dict()
    for key, value in student.state_dict().items():
        torch.testing.assert_close(value, taught[key])
    with pytest.raises(ValueError, match="1 to 3"):
        student_from_teacher(teacher, layers=4)


def test_a_student_can_take_one_teacher_layer_of_every_two_as_distilbert_did():
    teacher = tiny_classifier(layers=4)
    student = student_from_teacher(teacher, layers=2, keep=(0, 2))
    taught = teacher.state_dict()
    for key, value in student.state_dict().items():  # the student's layer 1 is the teacher's layer 2
        source = key.replace("encoder.layer.1.", "encoder.layer.2.")
        torch.testing.assert_close(value, taught[source])
    for keep in ((0,), (2, 0), (1, 1), (3, 4)):  # too few, out of order, repeated, past the top
        with pytest.raises(ValueError, match="must list 2 different layers"):
            student_from_teacher(teacher, layers=2, keep=keep)


def test_distillation_loss_mixes_the_teachers_softened_probabilities_and_the_labels():
    teacher = tiny_classifier(layers=2)
    batch = pad_batch([IDS, IDS[:5] + [102]], 0, labels=[1, 0])
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    twin = tiny_classifier(layers=2)  # the same weights: nothing to learn from the teacher
    assert distillation_loss(teacher, soft_weight=1.0)(twin, batch).item() == pytest.approx(0.0, abs=1e-6)
    hard = torch.nn.functional.cross_entropy(twin(**inputs).logits, batch["labels"])
    assert distillation_loss(teacher, soft_weight=0.0)(twin, batch).item() == pytest.approx(hard.item())


def test_fine_tune_trains_a_student_with_the_distillation_loss_and_leaves_the_teacher_alone():
    teacher = tiny_classifier(layers=2)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = student_from_teacher(teacher, layers=1)
    start = student.classifier.weight.detach().clone()
    profile = dataclasses.replace(get_profile("cpu"), batch_size=2, precision="fp32")
    encoded = [IDS, IDS[:5] + [102], IDS[2:], IDS[:3] + [102]]
    student, history = fine_tune(student, encoded, [1, 0, 1, 0], 0, profile, steps=2,
                                 loss=distillation_loss(teacher))
    assert len(history) >= 1 and not torch.equal(student.classifier.weight, start)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key])


def test_token_colours_are_drawn_one_panel_per_review_and_wrap_long_reviews():
    import matplotlib

    matplotlib.use("Agg")
    from helpers.plotting import show_token_colours

    tokens = ["a", "wonderful", "film"] * 40  # about 480 characters: several lines at width 90
    figure = show_token_colours([("signed", tokens, np.linspace(-1, 1, 120), True),
                                 ("unsigned", tokens[:3], [0.1, 0.5, 0.2], False)], width=90)
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["signed", "unsigned"]
    assert len(panels[0].texts) == 120 and len(panels[1].texts) == 3
    lines = {round(text.get_position()[1]) for text in panels[0].texts}
    assert len(lines) > 4 and max(text.get_position()[0] + len(text.get_text()) for text in panels[0].texts) <= 90
    assert len(figure.axes) == 4  # two panels and their colour bars
