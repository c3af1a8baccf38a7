"""The committed notebooks: built from their sources, prose before code, real outputs, SUMMARY lines."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from notebooks.build import SOURCES, colab_badge, notebook_from_source, repository_url

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FILES = sorted(SOURCES.glob("[0-9]*.py"))
# What each notebook's issue asks its SUMMARY line and figures to show.
REQUIRED = {
    "01_attention": ({"max_abs_diff_vs_sdpa", "max_abs_diff_vs_model_layer", "max_abs_diff_whole_encoder"}, 4),
    "02_tokenization": ({"wordpiece_match_rate", "reviews", "padding_efficiency_512", "fast_vs_scratch_speedup"}, 2),
    "03_mlm_finetuning": ({"perplexity_before", "perplexity_after", "masked_only_step_speedup",
                           "perplexity_head_only", "top1_accuracy", "unigram_top1_accuracy"}, 2),
    "04_imdb_classification": ({"accuracy", "f1", "baseline_accuracy", "baseline_c", "test_reviews",
                                "long_test_reviews", "train_reviews",
                                "tfidf_full_train_accuracy", "tfidf_full_train_reviews", "validation_size",
                                "train_seconds", "standard_path_steps", "standard_path_step_ratio",
                                "samples_per_second"}, 5),
    "05_speed_and_memory": ({"lever_speedup", "gflop_per_token", "memory_no_grad_ratio", "memory_checkpointing_ratio",
                             "leak_mb_per_step"}, 0),
    "06_scaling_and_serving": ({"processes", "max_abs_param_diff_vs_single", "accuracy_fp32", "accuracy_int8",
                                "latency_ms_fp32", "latency_ms_int8"}, 0),
    "07_trust_and_distillation": ({"ig_completeness_error", "deletion_drop_attributed", "deletion_drop_random",
                                   "deletion_drop_abs_ig", "deletion_drop_grad_x_input", "checklist_failures",
                                   "ece_before", "ece_after", "ece_before_ci", "ece_after_ci", "student_accuracy",
                                   "student_labels_only_accuracy", "student_vs_teacher_mcnemar_p",
                                   "student_speedup"}, 4),
}


def committed(source: Path) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / f"{source.stem}.ipynb", as_version=4)


def test_every_source_has_a_committed_notebook_and_an_entry_here():
    built = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    assert built == [p.stem for p in SOURCE_FILES] == sorted(REQUIRED)


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_committed_notebook_is_built_from_its_source(source):
    fresh, stored = notebook_from_source(source), committed(source)
    assert [(c.cell_type, c.source) for c in fresh.cells] == [(c.cell_type, c.source) for c in stored.cells], (
        f"{source.stem}.ipynb differs from {source.name}: run `make notebooks NB={source.stem[:2]}`"
    )


def test_notebook_04_tells_its_story_in_at_most_2000_words_of_prose():
    """Issue 27: the main story stays readable in about 45 minutes (the speed work is notebook 05's)."""
    source = SOURCES / "04_imdb_classification.py"
    prose = "\n".join(c.source for c in committed(source).cells if c.cell_type == "markdown")
    words = [w for w in prose.replace(colab_badge(repository_url(), source.stem), "").split() if w != "#"]
    assert len(words) <= 2000, f"notebook 04 has {len(words):,} words of prose: cut, or move a topic out"


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_every_code_cell_follows_prose(source):
    cells = committed(source).cells
    for before, cell in zip(cells, cells[1:]):
        if cell.cell_type == "code" and "colab" not in cell.metadata.get("tags", []):
            assert before.cell_type == "markdown", f"code cell {cell.id} has no sentence before it"


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_colab_cell_and_badge_use_the_one_repository_address(source):
    cells = committed(source).cells
    url = repository_url()
    assert colab_badge(url, source.stem) in cells[0].source
    first_code = next(c for c in cells if c.cell_type == "code")
    assert "google.colab" in first_code.source and f"git+{url}" in first_code.source


def test_readme_badges_use_the_one_repository_address():
    readme = (ROOT / "README.md").read_text()
    badges = re.findall(r"colab\.research\.google\.com/github/([^)\s]+)/blob/main/notebooks/(\w+)\.ipynb", readme)
    assert sorted(stem for _, stem in badges) == [p.stem for p in SOURCE_FILES]
    assert {path for path, _ in badges} == {repository_url().removeprefix("https://github.com/")}


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_committed_outputs_are_a_clean_cpu_run_with_figures_and_a_summary(source):
    cells = [c for c in committed(source).cells if c.cell_type == "code"]
    outputs = [o for c in cells for o in c.outputs]
    assert all(o.output_type != "error" for o in outputs)
    assert all(o.get("name") != "stderr" for o in outputs), "stderr in a stored output breaks nbval"
    keys, figures = REQUIRED[source.stem]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= figures
    last_lines = "".join(o.get("text", "") for o in cells[-1].outputs).strip().splitlines()
    assert last_lines and last_lines[-1].startswith("SUMMARY ")
    summary = json.loads(last_lines[-1].removeprefix("SUMMARY "))
    assert summary["profile"] == "cpu" and summary["notebook"] == source.stem
    assert keys | {"model", "seconds"} <= set(summary)


def committed_summary(stem: str) -> dict:
    notebook = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    last = "".join(o.get("text", "") for o in cells[-1].outputs).strip().splitlines()[-1]
    return json.loads(last.removeprefix("SUMMARY "))


def committed_text(stem: str) -> str:
    notebook = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


def test_the_committed_runs_were_built_together_as_make_notebooks_builds_them():
    """What no notebook can assert about itself: 04 ran after 03 and scored the whole test split, and
    05 served 04's classifier rather than its stand-in. (Each notebook asserts its own claims.)"""
    summary = committed_summary("04_imdb_classification")
    assert summary["standard_path_steps"] == 16, "04 timed the standard path's steps beside its own classifier"
    assert summary["test_reviews"] == 5000, "the cpu profile's 5,000 official test reviews"
    assert (summary["train_reviews"], summary["validation_size"]) == (3600, 400), "4,000 official training reviews"
    # all 25,000 official training reviews but the 400 validation ones and their 5 word-for-word duplicates
    assert summary["tfidf_full_train_reviews"] == 24_595, "the whole official training split, validation held out"
    assert "training a short stand-in" not in committed_text("06_scaling_and_serving"), "build 05 after 04"
    assert "No classifier from notebook 04" not in committed_text("07_trust_and_distillation"), "build 06 after 04"
    same_classifier = committed_summary("07_trust_and_distillation")["accuracy"]
    # 06 scores 1,000 of 04's 5,000 test reviews: a subset's accuracy lies within about 2.6 points (3 standard errors)
    assert same_classifier == pytest.approx(summary["accuracy"], abs=0.026), "06 examines the classifier 04 saved"


@pytest.mark.parametrize("source", SOURCE_FILES, ids=lambda p: p.stem)
def test_solutions_are_folded_in_jupyter_and_on_colab(source):
    solutions = [c for c in committed(source).cells if "solution" in c.metadata.get("tags", [])]
    assert solutions, "every notebook ends with exercises and their solutions"
    for cell in solutions:
        assert cell.metadata["jupyter"] == {"source_hidden": True}  # Jupyter and JupyterLab
        assert cell.metadata["cellView"] == "form" and cell.source.startswith("# @title ")  # Colab


def test_the_readme_quotes_the_committed_runs():
    """The README's table of measured figures must be the committed notebooks' own SUMMARY numbers."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### What the training notebooks measured"):readme.index("## Benchmarks")]
    s04, s05, s06, s07 = (committed_summary(stem) for stem in ("04_imdb_classification", "05_speed_and_memory",
                                                                "06_scaling_and_serving", "07_trust_and_distillation"))
    quoted = [f"{s04['accuracy']:.1%}", f"{s04['baseline_accuracy']:.1%}", f"{s04['train_seconds']:.0f} s",
              f"{s04['standard_path_step_ratio']:.1f}x", f"{s05['lever_speedup']:.1f}x",
              f"{s06['accuracy_int8']:.1%}", f"{s06['latency_ms_fp32']:.1f} -> {s06['latency_ms_int8']:.1f} ms",
              f"{s07['student_accuracy']:.1%}", f"{s07['ece_before']:.3f} -> {s07['ece_after']:.3f}",
              f"{s07['deletion_drop_attributed']:.2f}", f"{s07['student_speedup']:.2f}x",
              f"{s07['student_labels_only_accuracy']:.1%}"]
    # each behaviour test as "name failed-by-transformer/failed-by-TF-IDF of cases"
    quoted += [f"{name} {c['transformer']}/{c['TF-IDF']} of {c['cases']}"
               for name, c in s07["checklist_failures"].items()]
    missing = [number for number in quoted if number.replace("%", " %") not in table]
    assert not missing, f"the README's measured figures are not the committed runs': {missing}"
