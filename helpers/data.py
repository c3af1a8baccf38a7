"""Load IMDB reviews: `stanfordnlp/imdb` at a pinned revision, or a local folder laid out like it.

Introduced in notebook 01; every later notebook reads its reviews through `load_reviews`. Both
profiles read the same data set (the official 25k train / 25k test / 50k unlabelled split): the
`gpu` profile all of it, the `cpu` profile stratified, seeded subsets of each official split.
`TUTORIAL_DATASET` points at a local copy in the Hub's layout (CI: ../shared/data/imdb);
`TUTORIAL_DATA` replaces the data set with a reader's own .parquet/.csv/.tsv/.jsonl file with
`text` and `label` columns, or an extracted `aclImdb/` folder. The Hub's splits are sorted by
label: take subsets with `balanced_sample`, never "the first N".
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import re
from pathlib import Path

import pandas as pd
from datasets import Dataset, DatasetDict
from sklearn.model_selection import train_test_split

from helpers.profile import DATA_ENV, DATASET_ENV, Profile

LABEL_NAMES = ("negative", "positive")  # label 0 and label 1
_LABEL_WORDS = {"0": 0, "neg": 0, "negative": 0, "1": 1, "pos": 1, "positive": 1}
_READERS = {
    ".parquet": pd.read_parquet,
    # Only an empty field is missing: "NA", "None" and "null" are words a review can consist of.
    ".csv": lambda path: pd.read_csv(path, keep_default_na=False, na_values=[""]),
    ".tsv": lambda path: pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""]),
    ".jsonl": lambda path: pd.read_json(path, lines=True),
}
_ACLIMDB_FOLDERS = ("train/pos", "train/neg", "test/pos", "test/neg")  # train/unsup is optional


def clean_review(text: str) -> str:
    """Replace HTML line breaks and escaped quotes with plain text, collapsing repeated spaces."""
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE)
    text = text.replace('\\"', '"')
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _rows(mask: pd.Series) -> str:
    """Return the first few data rows (1 = the first row after the header) where `mask` holds."""
    rows = [str(i + 1) for i in mask.to_numpy().nonzero()[0][:5]]
    return ", ".join(rows) + (" ..." if mask.sum() > 5 else "")


def _labels(column: pd.Series, source: str) -> pd.Series:
    """Return 0/1 labels from words (negative/positive, neg/pos) or the numbers 0 and 1 (also as 0.0/1.0)."""
    if column.isna().any():
        raise ValueError(f"{source} has reviews without a label (row {_rows(column.isna())}).")
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = sorted(set(column.tolist()))
        if set(values) <= {0, 1}:
            return column.astype(int)
        hint = " (1 = negative, 2 = positive? subtract 1)" if values == [1, 2] else ""
        raise ValueError(f"{source} has labels {', '.join(f'{v:g}' for v in values[:5])}: expected 0 and 1{hint}.")
    words = column.astype(str).str.strip().str.lower().replace({"0.0": "0", "1.0": "1"})
    unknown = sorted(set(words) - set(_LABEL_WORDS))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise ValueError(f"{source} has labels {shown}: expected 0/1 or negative/positive.")
    return words.map(_LABEL_WORDS).astype(int)


def normalize_labels(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Return `frame` with a `text` column of reviews and integer labels 0/1, or raise a clear ValueError."""
    missing = [column for column in ("text", "label") if column not in frame.columns]
    if missing:
        found = ", ".join(repr(str(c)) for c in frame.columns)
        wanted = " or ".join(repr(m) for m in missing)
        raise ValueError(f"{source} has no {wanted} column (columns found: {found}).")
    text = frame["text"]
    if pd.api.types.is_numeric_dtype(text):
        raise ValueError(f"{source}'s text column holds numbers, not reviews: are the text and label columns swapped?")
    blank = text.isna() | (text.astype(str).str.strip() == "")
    if blank.any():
        raise ValueError(f"{source} has {int(blank.sum())} review(s) without text (row {_rows(blank)}): remove them.")
    return frame.assign(text=text.astype(str), label=_labels(frame["label"], source))


def read_aclimdb(folder: Path) -> pd.DataFrame:
    """Read an extracted aclImdb/ folder into text, label and split columns (unsup: label -1)."""
    absent = [name for name in _ACLIMDB_FOLDERS if not (folder / name).is_dir()]
    if absent:
        raise ValueError(f"{folder} has no {', '.join(absent)} folder(s): an extracted aclImdb/ holds train/ and "
                         "test/, each with pos/ and neg/ (aclImdb_v1.tar.gz).")
    rows, empty = [], []
    for split, label_dir, label in [
        ("train", "pos", 1), ("train", "neg", 0), ("test", "pos", 1), ("test", "neg", 0),
        ("unsupervised", "unsup", -1),
    ]:
        directory = folder / ("test" if split == "test" else "train") / label_dir
        other_case = sorted(p for p in directory.glob("*") if p.suffix.lower() == ".txt" and p.suffix != ".txt")
        if other_case:
            raise ValueError(f"{other_case[0]} ends in {other_case[0].suffix}: aclImdb's reviews end in .txt; rename "
                             f"the {len(other_case)} such file(s), or they would be left out.")
        for path in sorted(directory.glob("*.txt")):
            if not path.is_file():  # a folder, a pipe (reading it would wait forever) or a broken link
                raise ValueError(f"{path} is not a review file (a folder, a pipe or a broken link?): remove it.")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path} is not UTF-8 text: the reviews of aclImdb_v1.tar.gz are.") from None
            if text.strip():
                rows.append((text, label, split))
            else:
                empty.append(path)
    if empty:
        raise ValueError(f"{len(empty)} review file(s) in {folder} are empty, for example {empty[0]}.")
    if not rows:
        raise ValueError(f"{folder} holds no train/pos, train/neg, test/pos or test/neg reviews.")
    for split in ("train", "test"):
        for label, name in ((0, "neg"), (1, "pos")):
            if not any(row[1] == label and row[2] == split for row in rows):
                raise ValueError(f"{folder / split / name} holds no reviews: a classifier needs both classes in "
                                 f"the {split} split.")
    return pd.DataFrame(rows, columns=["text", "label", "split"])


def _check_delimiter(path: Path) -> None:
    """Raise ValueError when a .csv file's first line is tab-separated, or a .tsv file's comma-separated."""
    expected = {".csv": ",", ".tsv": "\t"}.get(path.suffix.lower())
    if expected is None:
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline().rstrip("\r\n")
    other = "\t" if expected == "," else ","
    if other in header and expected not in header:  # the reviews' own commas do not count: only the header
        kind, suffix = ("tab", ".tsv") if other == "\t" else ("comma", ".csv")
        raise ValueError(f"{path.name} is {kind}-separated (its first line is {header[:60]!r}): name it {suffix}.")


def _read_table(path: Path) -> pd.DataFrame:
    """Read a review file with the reader its suffix names, turning the readers' errors into one sentence."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"Cannot read {path.name}: use one of {', '.join(_READERS)} or an aclImdb/ folder.")
    _check_delimiter(path)
    kind = path.suffix.lower().lstrip(".")
    try:
        frame = reader(path)
    except UnicodeDecodeError:
        raise ValueError(f"{path.name} is not UTF-8 text: save it with UTF-8 encoding.") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path.name} is empty: it holds no reviews.") from None
    except pd.errors.ParserError as error:
        detail = str(error).strip().splitlines()[-1]
        raise ValueError(f"{path.name} is not well-formed {kind.upper()} ({detail}): check its quoting, "
                         "a text with the delimiter or a line break must be in double quotes.") from None
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid and pandas' JSON errors are ValueErrors
        raise ValueError(f"{path.name} cannot be read as {kind} ({type(error).__name__}): is it really a "
                         f".{kind} file?") from None
    if kind in ("csv", "tsv") and not isinstance(frame.index, pd.RangeIndex):  # pandas made the extra field an index
        raise ValueError(f"{path.name}'s rows have more fields than its header (first data row: "
                         f"{str(frame.index[0])[:40]!r}...): a text with the delimiter must be in double quotes.")
    return frame


def read_local_reviews(path: str | os.PathLike) -> pd.DataFrame:
    """Read a local review file or aclImdb/ folder into a frame with text and 0/1 labels."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"No IMDB data at {path}: point {DATA_ENV} at an existing file.")
    if path.is_dir():
        return read_aclimdb(path)
    if not path.is_file():  # a named pipe would block the reader forever; a device is not reviews
        raise ValueError(f"{path} is not a regular file (a pipe or a device?): point {DATA_ENV} at a review file.")
    frame = _read_table(path)
    if frame.empty:
        raise ValueError(f"{path.name} holds no reviews.")
    frame = normalize_labels(frame, source=path.name)
    labelled = frame["label"] if "split" not in frame.columns else frame.loc[frame["split"] != "unsupervised", "label"]
    if labelled.nunique() < 2:
        name = LABEL_NAMES[int(labelled.iloc[0])] if len(labelled) else "nothing"
        raise ValueError(f"All {len(labelled):,} labelled review(s) in {path.name} are {name}: "
                         "a classifier needs reviews of both classes.")
    return frame


def stratified_split(frame: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split labelled reviews into train and test with equal class shares, the same way every run."""
    n_test = math.ceil(len(frame) * test_fraction)
    classes = frame["label"].nunique()
    if n_test < classes or len(frame) - n_test < classes:
        raise ValueError(
            f"Cannot split {len(frame)} reviews with test_fraction={test_fraction}: "
            f"each split needs at least one review of each of the {classes} labels."
        )
    train, test = train_test_split(frame, test_size=n_test, stratify=frame["label"], random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def validation_split(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Carve a stratified validation split out of the training reviews: (reviews to fit, validation reviews).

    Every choice (learning rate, epochs, tokens, pooling, the baseline's C) is made on the
    validation reviews; the test reviews are scored once, at the end (notebook 04).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction {fraction!r}: give a share above 0 and below 1 of the training reviews.")
    fit, held = stratified_split(train.to_pandas()[["text", "label"]], fraction, seed)
    return (Dataset.from_dict({"text": fit["text"].tolist(), "label": fit["label"].tolist()}),
            Dataset.from_dict({"text": held["text"].tolist(), "label": held["label"].tolist()}))


def _to_dataset(frame: pd.DataFrame, split: str, clean: bool) -> Dataset:
    if frame.empty:
        raise ValueError(f"The {split!r} split is empty: the data holds no reviews for it.")
    texts = frame["text"].map(clean_review) if clean else frame["text"]
    return Dataset.from_dict({"text": texts.tolist(), "label": frame["label"].astype(int).tolist()})


def load_local(path: str | os.PathLike, profile: Profile, clean: bool = True) -> DatasetDict:
    """Load a local source; a file without a `split` column is split by `stratified_split`."""
    frame = read_local_reviews(path)
    if "split" in frame.columns:
        parts = {name: frame[frame["split"] == name] for name in frame["split"].unique()}
        for required in ("train", "test"):
            parts.setdefault(required, frame.iloc[0:0])
    else:
        parts = dict(zip(("train", "test"), stratified_split(frame, profile.test_fraction, profile.seed)))
    return DatasetDict({name: _to_dataset(part, name, clean) for name, part in parts.items()})


def balanced_sample(dataset: Dataset, size: int, seed: int) -> Dataset:
    """Return `size` reviews with the label shares of `dataset`, in a seeded random order (all if size >= len).

    Never take "the first N" reviews of a Hub split: stanfordnlp/imdb lists 12,500 negative reviews
    before the positive ones, so the first N would all be negative.
    """
    if size >= len(dataset):
        return dataset
    if size < 1:
        raise ValueError(f"Cannot sample {size} reviews: ask for at least one.")
    labels = dataset["label"]
    try:
        chosen, _ = train_test_split(range(len(dataset)), train_size=size, stratify=labels, random_state=seed)
    except ValueError:  # a class too small to stratify (or fewer rows than classes): a plain seeded draw
        chosen, _ = train_test_split(range(len(dataset)), train_size=size, random_state=seed)
    return dataset.select(chosen)


def download_imdb(dataset_id: str, revision: str | None) -> DatasetDict:
    """Load a data set with `datasets.load_dataset` (a Hub id or a local folder), or raise one clear error."""
    from datasets import load_dataset

    folder = Path(dataset_id).expanduser()
    if folder.is_absolute() or dataset_id.startswith("."):
        if not folder.is_dir():
            raise FileNotFoundError(f"No data set folder at {folder}: point {DATASET_ENV} at a folder laid out like "
                                    "stanfordnlp/imdb (plain_text/train-*.parquet, ...).")
        return load_dataset(str(folder))
    try:
        return load_dataset(dataset_id, revision=revision)
    except Exception as error:  # the Hub raises many types: connection, offline mode, 404
        raise ConnectionError(
            f"Could not download {dataset_id} from the Hugging Face Hub ({type(error).__name__}). Offline, set "
            f"{DATASET_ENV} to a local copy laid out like it, or {DATA_ENV} to your own IMDB file or aclImdb/ folder."
        ) from None


def sized(splits: DatasetDict, profile: Profile) -> DatasetDict:
    """Return each split cut to the profile's size: a stratified, seeded subset (all of it where the size is None)."""
    sizes = {"train": profile.train_reviews, "test": profile.test_reviews,
             "unsupervised": profile.unsupervised_reviews}
    return DatasetDict({name: split if sizes.get(name) is None else balanced_sample(split, sizes[name], profile.seed)
                        for name, split in splits.items()})


def load_reviews(profile: Profile, clean: bool = True) -> DatasetDict:
    """Return train/test (and, where the source has them, unsupervised) reviews at the profile's sizes."""
    if profile.data_file:
        splits = load_local(profile.data_file, profile, clean=False)
    else:
        splits = download_imdb(profile.dataset_id, profile.dataset_revision)
    splits = sized(splits, profile)
    if not clean:
        return splits
    return DatasetDict({name: _cleaned(split) for name, split in splits.items()})


def _cleaned(split: Dataset) -> Dataset:
    """Return the split with `clean_review` applied, cached by `datasets` under a key that changes with its code."""
    # datasets fingerprints a function by reference to the globals it calls: an edited clean_review
    # would be served from the old cache. Its source text is part of the key instead.
    key = hashlib.sha256((split._fingerprint + inspect.getsource(clean_review)).encode()).hexdigest()[:32]
    return split.map(lambda batch: {"text": [clean_review(t) for t in batch["text"]]}, batched=True,
                     new_fingerprint=key)
