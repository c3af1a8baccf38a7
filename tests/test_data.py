import datasets
import pandas as pd
import pytest
from conftest import run_offline
from datasets import Dataset, DatasetDict

from helpers.data import balanced_sample, clean_review, load_reviews, read_local_reviews, stratified_split
from helpers.profile import IMDB_HUB_ID, IMDB_HUB_REVISION, PROFILES

CPU = PROFILES["cpu"]


def write(frame: pd.DataFrame, path):
    {".parquet": frame.to_parquet, ".csv": lambda p: frame.to_csv(p, index=False),
     ".tsv": lambda p: frame.to_csv(p, sep="\t", index=False),
     ".jsonl": lambda p: frame.to_json(p, orient="records", lines=True)}[path.suffix](path)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv", ".jsonl"])
def test_every_local_format_loads_into_a_stratified_split(clean_env, tmp_path, reviews_frame, suffix):
    clean_env.setenv("TUTORIAL_DATA", str(write(reviews_frame, tmp_path / f"reviews{suffix}")))
    data = load_reviews(CPU)
    assert (data["train"].num_rows, data["test"].num_rows) == (16, 4)
    assert sorted(data["test"]["label"]) == [0, 0, 1, 1]
    assert "<br" not in " ".join(data["train"]["text"])


def test_word_labels_are_mapped_to_integers(tmp_path, reviews_frame):
    words = reviews_frame.assign(label=reviews_frame["label"].map({0: "Negative", 1: "pos"}))
    frame = read_local_reviews(write(words, tmp_path / "words.csv"))
    assert frame["label"].tolist() == reviews_frame["label"].tolist()


def test_aclimdb_folder_keeps_its_own_splits(clean_env, tmp_path):
    for split, label in [("train", "pos"), ("train", "neg"), ("test", "pos"), ("test", "neg"), ("train", "unsup")]:
        (tmp_path / split / label).mkdir(parents=True)
        (tmp_path / split / label / "0_7.txt").write_text(f"A {label} review.<br />Done.")
    clean_env.setenv("TUTORIAL_DATA", str(tmp_path))
    data = load_reviews(CPU)
    assert {name: ds.num_rows for name, ds in data.items()} == {"train": 2, "test": 2, "unsupervised": 1}
    assert data["unsupervised"]["label"] == [-1]


def test_the_split_is_deterministic_and_disjoint(reviews_frame):
    train_a, test_a = stratified_split(reviews_frame, 0.25, seed=0)
    train_b, test_b = stratified_split(reviews_frame, 0.25, seed=0)
    assert test_a.equals(test_b) and train_a.equals(train_b)
    assert not set(train_a["text"]) & set(test_a["text"])


def test_clean_review_removes_html_breaks_and_escaped_quotes():
    assert clean_review('\\"Great\\" film.<br /><br />Loved it.<BR>Yes') == '"Great" film. Loved it. Yes'


def test_the_real_sample_gives_4000_and_1000_balanced_reviews(sample_path, clean_env):
    clean_env.setenv("TUTORIAL_DATA", str(sample_path))
    data = load_reviews(CPU)
    assert (data["train"].num_rows, data["test"].num_rows) == (4000, 1000)
    assert abs(sum(data["test"]["label"]) - 503) <= 1  # 2,517 of 5,000 are positive


# Bad input: one clear sentence each.

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No IMDB data at .*nowhere.parquet: point TUTORIAL_DATA"):
        read_local_reviews(tmp_path / "nowhere.parquet")


@pytest.mark.slow
def test_no_data_variable_and_no_network_in_the_cpu_profile(tmp_path):
    code = "from helpers.data import load_reviews; from helpers.profile import PROFILES; load_reviews(PROFILES['cpu'])"
    result = run_offline(code, TUTORIAL_WORKDIR=str(tmp_path))
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1
    assert last_line.startswith("FileNotFoundError: The cpu profile needs IMDB reviews: set TUTORIAL_DATA")
    assert "the Hub could not be reached" in last_line
    assert not list(tmp_path.rglob("*.parquet*")), "nothing half-written is left behind"


def label_sorted(negative: int, positive: int, prefix: str = "") -> Dataset:
    """A split laid out like stanfordnlp/imdb's: every negative review before the positive ones."""
    labels = [0] * negative + [1] * positive
    return Dataset.from_dict({"text": [f"{prefix}review {i}" for i in range(len(labels))], "label": labels})


def test_balanced_sample_of_a_label_sorted_split_has_both_classes():
    split = label_sorted(500, 500)
    assert set(split.select(range(100))["label"]) == {0}, "the first N of a sorted split are one class"
    sample = balanced_sample(split, 100, seed=0)
    assert sum(sample["label"]) == 50 and len(set(sample["text"])) == 100
    assert sample["text"] == balanced_sample(split, 100, seed=0)["text"], "the same seed draws the same reviews"
    assert balanced_sample(split, 5_000, seed=0) is split, "asking for more than there is returns all"
    unlabelled = Dataset.from_dict({"text": [f"u{i}" for i in range(50)], "label": [-1] * 50})
    assert len(balanced_sample(unlabelled, 10, seed=0)) == 10


def test_cpu_profile_without_a_file_downloads_a_stratified_sample_once(clean_env, tmp_path, capsys):
    calls = []

    def fake_hub(name, revision=None, **kwargs):
        calls.append((name, revision))
        return DatasetDict({"train": label_sorted(2_500, 2_500, "train "), "test": label_sorted(800, 800, "test "),
                            "unsupervised": Dataset.from_dict({"text": ["u"] * 10, "label": [-1] * 10})})

    clean_env.setenv("TUTORIAL_WORKDIR", str(tmp_path))
    clean_env.setattr(datasets, "load_dataset", fake_hub)
    splits = load_reviews(CPU)
    assert calls == [(IMDB_HUB_ID, IMDB_HUB_REVISION)], "the pinned revision, not whatever main is today"
    assert (len(splits["train"]), len(splits["test"])) == (4_000, 1_000)
    assert sum(splits["train"]["label"]) == 2_000 and sum(splits["test"]["label"]) == 500
    assert all(t.startswith("test ") for t in splits["test"]["text"]), "the Hub's test reviews stay test reviews"
    assert "Saved a 5,000-review sample" in capsys.readouterr().out
    clean_env.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the cached sample must be used"))
    assert load_reviews(CPU)["test"]["text"] == splits["test"]["text"]


@pytest.mark.parametrize("column", ["text", "label"])
def test_missing_column(tmp_path, reviews_frame, column):
    path = write(reviews_frame.drop(columns=column), tmp_path / "bad.csv")
    with pytest.raises(ValueError, match=rf"bad.csv has no '{column}' column \(columns found: "):
        read_local_reviews(path)


def test_unknown_labels(tmp_path, reviews_frame):
    path = write(reviews_frame.assign(label=[3, 4] * 10), tmp_path / "stars.csv")
    with pytest.raises(ValueError, match=r"stars.csv has labels 3, 4: expected 0 and 1"):
        read_local_reviews(path)


def test_empty_file(tmp_path, reviews_frame):
    path = write(reviews_frame.iloc[0:0], tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="empty.parquet holds no reviews"):
        read_local_reviews(path)


def test_unsupported_file_type(tmp_path):
    (tmp_path / "reviews.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"Cannot read reviews.xlsx: use one of .parquet, .csv"):
        read_local_reviews(tmp_path / "reviews.xlsx")


def test_too_few_reviews_to_split(clean_env, tmp_path, reviews_frame):
    clean_env.setenv("TUTORIAL_DATA", str(write(reviews_frame.head(3), tmp_path / "tiny.csv")))
    with pytest.raises(ValueError, match="Cannot split 3 reviews with test_fraction=0.2"):
        load_reviews(CPU)


def test_empty_split_in_an_aclimdb_folder(clean_env, tmp_path):
    for folder in ("train/pos", "train/neg", "test/pos", "test/neg"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "train" / "pos" / "1_9.txt").write_text("Fine.")
    (tmp_path / "train" / "neg" / "2_1.txt").write_text("Dull.")
    clean_env.setenv("TUTORIAL_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="The 'test' split is empty"):
        load_reviews(CPU)


@pytest.mark.slow
def test_hub_unreachable_in_the_gpu_profile():
    code = "from helpers.data import load_reviews; from helpers.profile import PROFILES; load_reviews(PROFILES['gpu'])"
    result = run_offline(code)
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1
    assert last_line.startswith("ConnectionError: Could not download stanfordnlp/imdb from the Hugging Face Hub")
    assert "Set TUTORIAL_DATA to a local IMDB file" in last_line


def test_a_split_column_without_train_rows_is_an_empty_split(clean_env, tmp_path, reviews_frame):
    clean_env.setenv("TUTORIAL_DATA", str(write(reviews_frame.assign(split="test"), tmp_path / "split.csv")))
    with pytest.raises(ValueError, match="The 'train' split is empty"):
        load_reviews(CPU)
