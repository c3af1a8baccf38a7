import uuid

import datasets
import pandas as pd
import pytest
from conftest import run_offline
from datasets import Dataset, DatasetDict

from helpers.data import (
    balanced_sample,
    clean_review,
    load_reviews,
    read_local_reviews,
    shared_reviews,
    stratified_split,
)
from helpers.profile import IMDB_HUB_ID, IMDB_HUB_REVISION, get_profile


def write(frame: pd.DataFrame, path):
    {".parquet": frame.to_parquet, ".csv": lambda p: frame.to_csv(p, index=False),
     ".tsv": lambda p: frame.to_csv(p, sep="\t", index=False),
     ".jsonl": lambda p: frame.to_json(p, orient="records", lines=True)}[path.suffix](path)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv", ".jsonl"])
def test_every_local_format_loads_into_a_stratified_split(clean_env, tmp_path, reviews_frame, suffix):
    clean_env.setenv("TUTORIAL_DATA", str(write(reviews_frame, tmp_path / f"reviews{suffix}")))
    data = load_reviews(get_profile("cpu"))
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
    data = load_reviews(get_profile("cpu"))
    assert {name: ds.num_rows for name, ds in data.items()} == {"train": 2, "test": 2, "unsupervised": 1}
    assert data["unsupervised"]["label"] == [-1]


def test_the_split_is_deterministic_and_disjoint(reviews_frame):
    train_a, test_a = stratified_split(reviews_frame, 0.25, seed=0)
    train_b, test_b = stratified_split(reviews_frame, 0.25, seed=0)
    assert test_a.equals(test_b) and train_a.equals(train_b)
    assert not set(train_a["text"]) & set(test_a["text"])


def test_clean_review_removes_html_breaks_and_escaped_quotes():
    assert clean_review('\\"Great\\" film.<br /><br />Loved it.<BR>Yes') == '"Great" film. Loved it. Yes'


def test_the_cpu_profile_takes_stratified_subsets_of_the_official_splits(imdb_folder, clean_env):
    clean_env.setenv("TUTORIAL_DATASET", str(imdb_folder))
    profile = get_profile("cpu")
    data = load_reviews(profile)
    sizes = {name: split.num_rows for name, split in data.items()}
    assert sizes == {"train": 4_000, "test": 5_000, "unsupervised": 2_000}
    assert (sum(data["train"]["label"]), sum(data["test"]["label"])) == (2_000, 2_500), "half of each class"
    assert set(data["unsupervised"]["label"]) == {-1}
    assert load_reviews(profile)["test"]["text"] == data["test"]["text"], "the same reviews every run"
    official = datasets.load_dataset(str(imdb_folder))
    raw = load_reviews(profile, clean=False)
    assert set(raw["test"]["text"]) <= set(official["test"]["text"]), "test reviews come from the official test split"
    assert set(raw["train"]["text"]) <= set(official["train"]["text"])
    assert "<br" not in " ".join(data["train"]["text"]) and any("<br" in t for t in raw["train"]["text"])


def test_the_gpu_profile_reads_every_official_review(imdb_folder, clean_env):
    clean_env.setenv("TUTORIAL_DATASET", str(imdb_folder))
    data = load_reviews(get_profile("gpu"), clean=False)
    assert {name: split.num_rows for name, split in data.items()} == {"train": 25_000, "test": 25_000,
                                                                        "unsupervised": 50_000}
    assert shared_reviews(data) == 123, "the README's count of test reviews that are also training reviews"


def test_a_missing_dataset_folder_says_which_variable_to_fix(clean_env, tmp_path):
    clean_env.setenv("TUTORIAL_DATASET", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"No data set folder at .*nowhere: point TUTORIAL_DATASET"):
        load_reviews(get_profile("cpu"))


# Bad input: one clear sentence each.

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No IMDB data at .*nowhere.parquet: point TUTORIAL_DATA"):
        read_local_reviews(tmp_path / "nowhere.parquet")


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_no_local_data_and_no_network(tmp_path, profile):
    code = f"from helpers.data import load_reviews; from helpers.profile import get_profile; " \
           f"load_reviews(get_profile('{profile}'))"
    result = run_offline(code, TUTORIAL_WORKDIR=str(tmp_path), HF_HOME=str(tmp_path / "hf"))  # no cached copy
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1
    assert last_line.startswith("ConnectionError: Could not download stanfordnlp/imdb from the Hugging Face Hub")
    assert "Offline, set TUTORIAL_DATASET to a local copy laid out like it" in last_line


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


def test_the_hub_is_read_at_its_pinned_revision_and_cut_to_the_profiles_sizes(clean_env, tmp_path):
    calls = []

    def fake_hub(name, revision=None, **kwargs):
        calls.append((name, revision))
        return DatasetDict({"train": label_sorted(5_000, 5_000, "train "), "test": label_sorted(4_000, 4_000, "test "),
                            "unsupervised": Dataset.from_dict({"text": ["u"] * 3_000, "label": [-1] * 3_000})})

    clean_env.setattr(datasets, "load_dataset", fake_hub)
    splits = load_reviews(get_profile("cpu"))
    assert calls == [(IMDB_HUB_ID, IMDB_HUB_REVISION)], "the pinned revision, not whatever main is today"
    assert {name: len(split) for name, split in splits.items()} == {"train": 4_000, "test": 5_000,
                                                                     "unsupervised": 2_000}
    assert sum(splits["train"]["label"]) == 2_000 and sum(splits["test"]["label"]) == 2_500
    assert all(t.startswith("test ") for t in splits["test"]["text"]), "the Hub's test reviews stay test reviews"
    assert len(load_reviews(get_profile("gpu"))["test"]) == 8_000, "the gpu profile takes all of them"


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
        load_reviews(get_profile("cpu"))


def test_empty_split_in_an_aclimdb_folder(clean_env, tmp_path):
    for folder in ("train/pos", "train/neg", "test/pos", "test/neg"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "train" / "pos" / "1_9.txt").write_text("Fine.")
    (tmp_path / "train" / "neg" / "2_1.txt").write_text("Dull.")
    clean_env.setenv("TUTORIAL_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=r"test/neg holds no reviews: a classifier needs both classes"):
        load_reviews(get_profile("cpu"))


def test_a_split_column_without_train_rows_is_an_empty_split(clean_env, tmp_path, reviews_frame):
    clean_env.setenv("TUTORIAL_DATA", str(write(reviews_frame.assign(split="test"), tmp_path / "split.csv")))
    with pytest.raises(ValueError, match="The 'train' split is empty"):
        load_reviews(get_profile("cpu"))


@pytest.mark.slow
def test_the_gpu_data_path_reads_cleans_and_tokenizes_all_100000_reviews(imdb_folder, clean_env):
    """The gpu profile's data path at its real size, on the Hub's text: what notebooks 02-04 do first."""
    from transformers import AutoTokenizer

    from helpers.models import minilm_path

    clean_env.setenv("TUTORIAL_DATASET", str(imdb_folder))
    splits = load_reviews(get_profile("gpu"))
    assert {name: len(split) for name, split in splits.items()} == {"train": 25_000, "test": 25_000,
                                                                     "unsupervised": 50_000}
    texts = [text for split in splits.values() for text in split["text"]]
    assert not any("<br" in text for text in texts) and all(text.strip() for text in texts)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())  # bert-base-uncased's vocabulary and normalizer
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    longer_than_512 = sum(n > 510 for n in lengths) / len(lengths)
    assert 250 < sum(lengths) / len(lengths) < 350, "about 300 WordPiece tokens per review (the GUIDE's figure)"
    assert 0.10 < longer_than_512 < 0.18, "about 14 % of the reviews do not fit in 512 tokens"


# A local folder in the Hub's layout (TUTORIAL_DATASET) gets the checks a reader's own file gets.

def hub_folder(root, **splits: pd.DataFrame):
    (root / "plain_text").mkdir(parents=True)
    for name, frame in splits.items():
        frame.to_parquet(root / "plain_text" / f"{name}-00000-of-00001.parquet", index=False)
    files = "".join(f"  - split: {name}\n    path: plain_text/{name}-*\n" for name in splits)
    (root / "README.md").write_text(f"---\nconfigs:\n- config_name: plain_text\n  data_files:\n{files}---\n")
    return root  # laid out as stanfordnlp/imdb, whose README names the splits (unsupervised is no default name)


def hub_split(n: int = 20, **columns) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"Review {i}, {'fine' if i % 2 else 'dull'}." for i in range(n)],
                         "label": [i % 2 for i in range(n)]}).assign(**columns)


@pytest.mark.parametrize(("splits", "message"), [
    ({"train": hub_split()}, r"has no test split \(splits found: train\): it needs train and test"),
    ({"train": hub_split(), "test": hub_split(label=[1, 2] * 10)},
     r"The test split of .* has labels 1, 2: expected 0 and 1 \(1 = negative, 2 = positive\? subtract 1\)"),
    ({"train": hub_split().rename(columns={"text": "review"}), "test": hub_split().rename(columns={"text": "review"})},
     r"The train split of .* has no 'text' column \(columns found: 'review', 'label'\)"),
    ({"train": hub_split(text=[None] + [f"r{i}" for i in range(19)]), "test": hub_split()},
     r"The train split of .* has 1 review\(s\) without text \(row 1\)"),
    ({"train": hub_split(), "test": hub_split(label=1)}, r"The test split of .* holds only positive reviews"),
    ({"train": hub_split(), "test": hub_split(),
      "unsupervised": hub_split(text=["   "] * 20, label=-1)}, r"The unsupervised split of .* without text"),
])
def test_a_folder_in_the_hub_layout_is_checked_like_a_file(clean_env, tmp_path, splits, message):
    clean_env.setenv("TUTORIAL_DATASET", str(hub_folder(tmp_path / "imdb", **splits)))
    with pytest.raises(ValueError, match=message):
        load_reviews(get_profile("cpu"))


def test_a_hub_layout_folder_with_word_labels_reads_them_as_0_and_1(clean_env, tmp_path):
    words = {"label": ["neg", "pos"] * 10}
    clean_env.setenv("TUTORIAL_DATASET", str(hub_folder(tmp_path / "imdb", train=hub_split(**words),
                                                        test=hub_split(**words))))
    data = load_reviews(get_profile("cpu"))
    assert data["test"]["label"][:4] == [0, 1, 0, 1]


def test_a_relative_dataset_folder_is_read_as_a_folder_not_a_hub_id(clean_env, tmp_path):
    hub_folder(tmp_path / "imdb", train=hub_split(), test=hub_split())
    clean_env.chdir(tmp_path)
    clean_env.setenv("TUTORIAL_DATASET", "imdb")  # no leading ./: before, a Hub id and "Could not download"
    assert load_reviews(get_profile("cpu"))["train"].num_rows == 20


def test_a_hub_layout_folder_whose_splits_differ_in_columns_says_so(clean_env, tmp_path):
    hub_folder(tmp_path / "imdb", train=hub_split().rename(columns={"text": "review"}), test=hub_split())
    clean_env.setenv("TUTORIAL_DATASET", str(tmp_path / "imdb"))
    with pytest.raises(ValueError, match=r"imdb cannot be read as a data set laid out like stanfordnlp/imdb"):
        load_reviews(get_profile("cpu"))


def test_a_hub_layout_folder_that_is_not_a_data_set_says_so(clean_env, tmp_path):
    (tmp_path / "imdb" / "plain_text").mkdir(parents=True)
    (tmp_path / "imdb" / "plain_text" / "train-00000-of-00001.parquet").write_text("not parquet")
    clean_env.setenv("TUTORIAL_DATASET", str(tmp_path / "imdb"))
    with pytest.raises(ValueError, match=r"imdb cannot be read as a data set laid out like stanfordnlp/imdb"):
        load_reviews(get_profile("cpu"))


def test_two_hub_layout_folders_of_the_same_name_each_give_their_own_reviews(clean_env, tmp_path):
    # datasets keys a README-configured folder's cache on its name and README: the second folder
    # was served the first one's reviews until the resolved files were passed to load_dataset
    for where, word in (("a", "first"), ("b", "second")):
        split = hub_split(text=[f"{word} {i}" for i in range(20)])
        clean_env.setenv("TUTORIAL_DATASET", str(hub_folder(tmp_path / where / "imdb", train=split, test=split)))
        assert load_reviews(get_profile("cpu"))["test"]["text"][0].startswith(word)


def test_class_label_ids_are_read_through_their_names(clean_env, tmp_path):
    # a ClassLabel whose names run the other way: id 0 is "pos"; taking ids at face value flips every label
    folder = tmp_path / "imdb"
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["pos", "neg"])})
    for name in ("train", "test"):
        split = Dataset.from_dict({"text": [f"great {i}" for i in range(10)] + [f"awful {i}" for i in range(10)],
                                   "label": [0] * 10 + [1] * 10}, features=features)
        (folder / "plain_text").mkdir(parents=True, exist_ok=True)
        split.to_parquet(folder / "plain_text" / f"{name}-00000-of-00001.parquet")  # the features go with the file
    clean_env.setenv("TUTORIAL_DATASET", str(folder))
    test = load_reviews(get_profile("cpu"))["test"]
    assert {text.split()[0]: label for text, label in zip(test["text"], test["label"])} == {"great": 1, "awful": 0}


def test_a_download_from_the_hub_is_read_through_the_real_loader(clean_env, tmp_path):
    # the success path of the Hub download without a network: datasets' own load_dataset reads a folder in the
    # Hub's layout standing in for the Hub, and the call it got names the pinned id and revision
    # a name of its own: datasets keys a README-configured folder's cache on its name (helpers.data._local_files)
    folder = hub_folder(tmp_path / f"hub-{uuid.uuid4().hex}", train=hub_split(40), test=hub_split(30),
                        unsupervised=hub_split(10, label=[-1] * 10))
    real_load, calls = datasets.load_dataset, []

    def hub(name, revision=None, **kwargs):
        calls.append((name, revision))
        return real_load(str(folder), **kwargs)

    clean_env.setattr(datasets, "load_dataset", hub)
    splits = load_reviews(get_profile("gpu"))
    assert calls == [(IMDB_HUB_ID, IMDB_HUB_REVISION)]
    assert {name: len(split) for name, split in splits.items()} == {"train": 40, "test": 30, "unsupervised": 10}
    assert sorted(set(splits["test"]["label"])) == [0, 1] and set(splits["unsupervised"]["label"]) == {-1}
    assert splits["train"]["text"][0] == "Review 0, dull.", "the reviews come through as the files hold them"
