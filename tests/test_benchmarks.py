"""Every benchmark runs at its smallest size and writes its table and figures, so none of them rots."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_step
from benchmarks.common import Goal
from benchmarks.run import BENCHMARKS, main


@pytest.fixture(scope="module")
def smallest(tmp_path_factory):
    assert __import__("os").environ.get("TUTORIAL_DATASET"), "set TUTORIAL_DATASET (make test does)"
    out = tmp_path_factory.mktemp("bench")
    scratch, tempfile.tempdir = tempfile.tempdir, str(tmp_path_factory.mktemp("scratch"))  # what the runs leave
    environ = __import__("os").environ
    folders = {key: environ.pop(key, None) for key in ("TUTORIAL_WORKDIR", "TUTORIAL_MODELS_DIR")}
    environ["TUTORIAL_WORKDIR"] = str(tmp_path_factory.mktemp("work"))  # no notebook's models: the stand-ins run
    try:
        return main(["--size", "smallest", "--out", str(out)]), out
    finally:
        LEFT_BEHIND.extend(Path(tempfile.tempdir).iterdir())
        tempfile.tempdir = scratch
        for key, value in folders.items():
            environ.pop(key, None)
            if value is not None:
                environ[key] = value


LEFT_BEHIND: list[Path] = []


@pytest.mark.slow  # every benchmark at its smallest size: minutes
def test_every_benchmark_writes_a_table_and_the_summary_merges_them(smallest):
    summary, out = smallest
    for name in BENCHMARKS:
        text = (out / f"{name}.md").read_text()
        assert text.startswith("# ") and "|---|" in text
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "attention.png").stat().st_size > 0
    for key, goal in summary["goals"].items():  # the verdict is the value read against the stated bound
        bound = float(goal["goal"].split()[1])
        assert goal["value"] == summary["results"][key]
        assert goal["met"] == (goal["value"] >= bound if goal["goal"].startswith(">=") else goal["value"] <= bound)


@pytest.mark.slow  # every benchmark at its smallest size: minutes
def test_attention_memory_grows_with_the_score_matrix_only_when_written_out(smallest):
    per_length = smallest[0]["results"]["sdpa_vs_naive_attention"]
    assert set(per_length) == {"64", "128"}
    assert per_length["128"]["memory_ratio"] > per_length["64"]["memory_ratio"] > 1


@pytest.mark.slow  # every benchmark at its smallest size: minutes
def test_tokenizers_agree_and_grouping_pads_least(smallest):
    results = smallest[0]["results"]
    assert results["wordpiece_match_rate"] == 1.0
    efficiency = results["padding_efficiency_256"]  # 64 stratified reviews at 256 tokens
    assert efficiency["pad to max"] <= efficiency["dynamic padding"] < efficiency["length-grouped"] <= 1
    assert results["grouped_padding_efficiency_256"] == efficiency["length-grouped"]


@pytest.mark.slow  # every benchmark at its smallest size: minutes
def test_serving_and_cost_figures_are_consistent(smallest):
    results = smallest[0]["results"]
    for name in ("accuracy_int8", "accuracy_fp32"):  # a share of the 32 held-out reviews scored
        assert results[name] * 32 == pytest.approx(round(results[name] * 32))
    assert results["int8_accuracy_drop"] == pytest.approx((results["accuracy_fp32"] - results["accuracy_int8"]) * 100,
                                                          abs=0.01)
    assert smallest[0]["goals"]["int8_accuracy_drop"]["goal"] == "<= 2", "the threshold of helpers.serving"
    minutes, t4_range = results["gpu_recipe_minutes_assumed"], results["gpu_recipe_t4_minutes_published_range"]
    assert minutes["T4"] == pytest.approx(results["gpu_recipe_pflop"] * 1e15 / 12e12 / 60, rel=0.02), "12 TFLOP/s"
    assert t4_range[0] < minutes["T4"] < t4_range[1], "12 TFLOP/s lies inside the published 9-15"


def test_a_goal_knows_when_it_is_met():
    assert Goal("x", minimum=1.5).met(1.5) and not Goal("x", minimum=1.5).met(1.49)
    assert Goal("x", maximum=1.0).met(0.0) and not Goal("x", maximum=1.0).met(1.2)
    assert Goal("x", minimum=1, maximum=2).describe() == ">= 1 and <= 2"


def test_recipe_seeds_compares_two_groups_of_seeds_with_welchs_interval():
    import numpy as np
    from scipy import stats

    from benchmarks.recipe_seeds import welch

    pick, profile_recipe = [0.915, 0.912, 0.914], [0.9044, 0.9024, 0.8996]
    difference, half, p = welch(pick, profile_recipe)
    assert difference == pytest.approx(sum(pick) / 3 - sum(profile_recipe) / 3)
    # Welch's interval written out: the degrees of freedom of Welch-Satterthwaite, Student's t
    va, vb = np.var(pick, ddof=1) / 3, np.var(profile_recipe, ddof=1) / 3
    freedom = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    assert half == pytest.approx(stats.t.ppf(0.975, freedom) * np.sqrt(va + vb))
    reference = stats.ttest_ind(pick, profile_recipe, equal_var=False)
    assert p == pytest.approx(reference.pvalue) and p < 0.05  # these made-up seeds differ; swapped, the sign turns
    assert welch(profile_recipe, pick)[0] == pytest.approx(-difference)


@pytest.mark.slow  # every benchmark at its smallest size: minutes
def test_seeds_table_pairs_base_and_adapted_runs_and_reads_its_goals(smallest):
    summary, out = smallest
    results = summary["results"]
    assert len(results["base_accuracy_by_seed"]) == len(results["adapted_accuracy_by_seed"]) == len(results["seeds"])
    assert results["base_accuracy_mean"] == pytest.approx(sum(results["base_accuracy_by_seed"]) * 100 / 2, abs=0.01)
    beats = sum(a > results["tfidf_accuracy"] for a in results["base_accuracy_by_seed"])
    assert results["base_beats_tfidf_seeds"] == beats
    assert {"base_accuracy_mean", "base_beats_tfidf_share", "classifier_train_seconds_max"} <= set(summary["goals"])
    assert "a stand-in" in (out / "seeds.md").read_text(), "the smallest size says its encoder is not notebook 03's"
    assert results["base_minus_tfidf_points"] == pytest.approx(  # from figures rounded to 4 decimals
        (sum(results["base_accuracy_by_seed"]) / 2 - results["tfidf_accuracy"]) * 100, abs=0.02)
    low, high = results["base_minus_tfidf_interval_points"]
    assert low <= results["base_minus_tfidf_points"] <= high
    assert "base_minus_tfidf_paired_low_min_points" in summary["goals"]
    assert len(results["base_read_whole_accuracy_by_seed"]) == 2, "every run is also scored reading reviews whole"
    assert "base_read_whole_minus_tfidf_paired_low_min_points" in summary["goals"]
    assert not [p for p in LEFT_BEHIND if p.name.startswith("stand-in-encoder-")], "the stand-in encoder is removed"
    assert set(results["recipe_candidates"]) and all(0 <= c["validation_accuracy"] <= 1
                                                     for c in results["recipe_candidates"].values())


def test_notebook_04_and_the_readme_cite_the_committed_seeds_table():
    """The seeds table is the evidence notebook 04's prose and the README rest on: the numbers must be its own."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    results = json.loads((root / "benchmarks" / "results" / "summary.json").read_text())["results"]
    source = (root / "notebooks" / "src" / "04_imdb_classification.py").read_text()
    readme = (root / "README.md").read_text()
    cited = [f"{results['base_accuracy_mean']:.2f} %", f"{results['adapted_accuracy_mean']:.2f} %",
             f"{results['tfidf_accuracy'] * 100:.2f} %", f"p = {results['base_vs_adapted_paired_t_p']:.2f}",
             f"{results['base_read_whole_accuracy_mean']:.2f} %"]
    for text in cited:
        assert text in source and text in readme, text
    assert f"C = {results['tfidf_c']:g}" in source



def test_the_readme_cites_the_committed_recipe_seeds_table():
    """The README's case for the recipe's pick must quote the benchmark's own figures."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    results = json.loads((root / "benchmarks" / "results" / "summary.json").read_text())["results"]
    readme = (root / "README.md").read_text()
    low, high = results["recipe_seeds_minus_profile_interval_points"]
    cited = [f"{results['recipe_seeds_read_whole_mean']:.2f} %", f"{results['recipe_seeds_tfidf_accuracy']:.2%}",
             f"{results['recipe_seeds_read_whole_minus_tfidf_paired_low_min_points']:+.2f} points",
             f"{results['recipe_seeds_minus_profile_points']:+.2f} points, 95 % interval {low:+.2f} to {high:+.2f}"]
    for text in cited:
        assert text.replace("%", " %").replace("  %", " %") in readme, text

def test_the_gpu_step_benchmark_stops_with_one_sentence_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        gpu_step.main()


@pytest.mark.slow  # every benchmark at its smallest size: minutes
def test_the_learning_curve_scores_both_models_on_the_same_reviews_at_each_size(smallest):
    summary, out = smallest
    results = summary["results"]
    reviews, tfidf = results["learning_curve_reviews"], results["learning_curve_tfidf_accuracy"]
    transformer = results["learning_curve_transformer_accuracy"]
    assert reviews == [48, 96, 192] and len(tfidf) == 3, "TF-IDF at every size, the transformer at the first two"
    assert len(transformer) == len(results["learning_curve_train_seconds"]) == 2
    for accuracy in tfidf + transformer:  # a share of the 32 test reviews, rounded to 4 decimals
        assert accuracy * 32 == pytest.approx(round(accuracy * 32), abs=0.01)
    ahead_from = results["learning_curve_transformer_ahead_from"]
    if ahead_from is not None:  # "ahead from N" is only said where the transformer scores higher at N and after
        assert all(t > f for r, t, f in zip(reviews, transformer, tfidf) if r >= ahead_from)
    assert (out / "learning_curve.png").stat().st_size > 0


@pytest.mark.slow  # every benchmark at its smallest size: minutes
def test_the_full_test_benchmark_scores_three_models_and_says_its_classifier_is_a_stand_in(smallest):
    summary, out = smallest
    results = summary["results"]
    assert results["full_test_reviews"] == 48
    for key in ("classifier", "tfidf_same_reviews", "tfidf_full_train"):
        right = results[f"full_test_{key}_accuracy"] * 48  # a share of the 48 test reviews, rounded to 4 decimals
        assert right == pytest.approx(round(right), abs=0.01)
    text = (out / "full_test.md").read_text()
    assert "a stand-in" in text
    assert "each read whole; the classifier scored here, on the same reviews read whole" in text  # 04's reading
    assert not [p for p in LEFT_BEHIND if p.name.startswith("stand-in-classifier-")], "the stand-in is removed"


@pytest.mark.slow  # every benchmark at its smallest size: minutes
def test_the_students_benchmark_distils_both_starts_with_every_seed(smallest):
    summary, out = smallest
    results = summary["results"]
    lowest, every_other = results["student_lowest_accuracy_by_seed"], results["student_every_other_accuracy_by_seed"]
    assert len(lowest) == len(every_other) == len(results["student_seeds"]) == 2
    for accuracy in lowest + every_other:  # a share of the 32 test reviews, rounded to 4 decimals
        assert accuracy * 32 == pytest.approx(round(accuracy * 32), abs=0.01)
    assert results["student_lowest_minus_every_other_points"] == pytest.approx(
        (sum(lowest) - sum(every_other)) / 2 * 100, abs=0.02)
    low, high = results["student_lowest_minus_every_other_interval_points"]
    assert low <= results["student_lowest_minus_every_other_points"] <= high
    text = (out / "students.md").read_text()
    assert "a stand-in" in text and "(0, 1, 2)" in text and "(0, 2, 4)" in text  # 3 of the 6 layers


@pytest.mark.slow  # reads the whole data set
def test_the_benchmarks_draw_notebook_04s_own_reviews():
    import dataclasses

    from benchmarks.full_test import notebook_test_rows
    from benchmarks.learning_curve import draw
    from helpers.data import load_reviews, validation_split
    from helpers.profile import get_profile

    profile = get_profile("cpu")
    whole = load_reviews(dataclasses.replace(profile, train_reviews=None, test_reviews=None))
    notebook = load_reviews(profile)  # what notebook 04 reads
    rows, test_texts = notebook_test_rows(whole["test"], profile), list(whole["test"]["text"])
    assert sorted(test_texts[i] for i in rows) == sorted(notebook["test"]["text"]), "the same 5,000 test reviews"
    fit, validation = draw(whole["train"], profile.train_reviews, profile)
    notebook_fit, notebook_validation = validation_split(notebook["train"], profile.validation_fraction, profile.seed)
    assert fit["text"] == notebook_fit["text"] and validation["text"] == notebook_validation["text"]


def test_the_full_test_benchmark_stops_with_a_sentence_without_notebook_04s_classifier(tmp_path):
    from benchmarks import full_test

    with pytest.raises(FileNotFoundError, match="run notebook 04 first"):
        full_test.run("full", folder=tmp_path / "nothing")


def test_a_benchmark_whose_notebook_model_is_missing_is_skipped_with_its_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUTORIAL_WORKDIR", str(tmp_path / "work"))  # no notebook 04 classifier there
    monkeypatch.delenv("TUTORIAL_MODELS_DIR", raising=False)
    summary = main(["--only", "full_test", "--out", str(tmp_path)])
    assert "run notebook 04 first" in summary["skipped"]["full_test"] and not summary["results"]
    assert "skipped full_test: No classifier in" in capsys.readouterr().out
    assert not (tmp_path / "full_test.md").exists()


@pytest.mark.slow  # every benchmark at its smallest size: minutes
def test_the_standard_path_is_trained_beside_ours_with_every_seed(smallest):
    results = smallest[0]["results"]
    seeds = results["standard_path_seeds"]
    assert len(results["ours_accuracy_by_seed"]) == len(results["standard_accuracy_by_seed"]) == len(seeds) == 2
    low, high = results["ours_minus_standard_interval_points"]
    assert low <= results["ours_minus_standard_points"] <= high
    assert results["standard_train_seconds_mean"] > 0 and results["our_train_seconds_mean"] > 0
