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

import csv
import hashlib
import inspect
import math
import os
import re
import warnings
from pathlib import Path

import pandas as pd
from datasets import ClassLabel, Dataset, DatasetDict
from datasets.exceptions import DatasetsError
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
try:
    from httpx import HTTPError as _HTTPError
except ImportError:  # older datasets versions talk to the Hub through requests, whose errors are OSErrors
    _HTTPError = OSError
_NETWORK_ERRORS = (OSError, _HTTPError)
_ACLIMDB_FOLDERS = ("train/pos", "train/neg", "test/pos", "test/neg")  # train/unsup is optional


def clean_review(text: str) -> str:
    """Replace HTML line breaks and escaped quotes with plain text, collapsing repeated spaces."""
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE)
    text = text.replace('\\"', '"')
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def _rows(mask: pd.Series) -> str:
    """Return the first few data rows (1 = the first row after the header) where `mask` holds."""
    rows = [str(i + 1) for i in mask.index[mask.to_numpy()][:5]]  # a file's frame is indexed 0, 1, ... by row
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


def _check_text(path: Path) -> None:
    """Raise ValueError when a file that should be text starts like a compressed or binary file."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    packed = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"PAR1": "Parquet"}
    for magic, kind in packed.items():
        if head.startswith(magic):
            raise ValueError(f"{path.name} is a {kind} file, not {path.suffix.lstrip('.').upper()} text: "
                             + ("name it .parquet." if kind == "Parquet" else "decompress it first."))
    wide = head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 1 and (head[0::2].count(0) > len(head) // 4
                                                                       or head[1::2].count(0) > len(head) // 4))
    if wide:  # Excel's "Unicode text" is UTF-16: a NUL byte beside every ASCII letter
        raise ValueError(f"{path.name} is UTF-16 (or UTF-32) text, not UTF-8: save it with UTF-8 encoding.")
    if b"\x00" in head:
        raise ValueError(f"{path.name} holds binary data (NUL bytes), not {path.suffix.lstrip('.').upper()} text.")


def _check_rows(path: Path, delimiter: str) -> None:
    """Read a .csv/.tsv file as written, row by row, and name the first line that does not parse.

    pandas forgives too much: a row with an extra field turns the first field into an index (the
    review is cut), and an unbalanced quote swallows the following rows into one review that gets
    the last row's label. Python's csv module in strict mode stops at such a line instead.
    """
    limit = csv.field_size_limit(2**31 - 1)  # a review may be longer than the module's default 131,072 characters
    try:
        _scan_rows(path, delimiter)
    finally:
        csv.field_size_limit(limit)


def _scan_rows(path: Path, delimiter: str) -> None:
    quote = "a field that starts with a double quote must end with one (a quote inside it is doubled: \"\")"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = next(rows, None)
            for row in rows:
                if row and len(row) != len(header):
                    raise ValueError(f"{path.name}, line {rows.line_num}: {len(row)} fields where the header has "
                                     f"{len(header)}: a text with the delimiter or a line break must be in double "
                                     "quotes.")
        except csv.Error as error:
            raise ValueError(f"{path.name}, line {rows.line_num}: not well-formed ({error}): {quote}.") from None


def _read_table(path: Path) -> pd.DataFrame:
    """Read a review file with the reader its suffix names, turning the readers' errors into one sentence."""
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"Cannot read {path.name}: use one of {', '.join(_READERS)} or an aclImdb/ folder.")
    kind = path.suffix.lower().lstrip(".")
    not_utf8 = f"{path.name} is not UTF-8 text: save it with UTF-8 encoding."
    if kind != "parquet":
        _check_text(path)
    if kind in ("csv", "tsv"):
        _check_delimiter(path)
        try:
            _check_rows(path, "," if kind == "csv" else "\t")
        except UnicodeDecodeError:
            raise ValueError(not_utf8) from None
    try:
        frame = reader(path)
    except UnicodeDecodeError:
        raise ValueError(not_utf8) from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path.name} is empty: it holds no reviews.") from None
    except pd.errors.ParserError as error:
        detail = str(error).strip().splitlines()[-1]
        raise ValueError(f"{path.name} is not well-formed {kind.upper()} ({detail}): check its quoting, "
                         "a text with the delimiter or a line break must be in double quotes.") from None
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid and pandas' JSON errors are ValueErrors
        raise ValueError(f"{path.name} cannot be read as {kind} ({type(error).__name__}): is it really a "
                         f".{kind} file?") from None
    return frame


def read_local_reviews(path: str | os.PathLike) -> pd.DataFrame:
    """Read a local review file or aclImdb/ folder into a frame with text and 0/1 labels."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"No IMDB data at {path}: point {DATA_ENV} at an existing file.")
    if path.is_dir():
        if path.suffix.lower() in _READERS:  # e.g. a Spark-style reviews.parquet/ folder of part files
            raise ValueError(f"{path} is a folder, not a {path.suffix} file: point {DATA_ENV} at one review file "
                             "(for a folder of part files, at one of them) or at an extracted aclImdb/ folder.")
        return read_aclimdb(path)
    if not path.is_file():  # a named pipe would block the reader forever; a device is not reviews
        raise ValueError(f"{path} is not a regular file (a pipe or a device?): point {DATA_ENV} at a review file.")
    frame = _read_table(path)
    if frame.empty:
        raise ValueError(f"{path.name} holds no reviews.")
    unlabelled = pd.Series(False, index=frame.index)
    if "split" in frame.columns:  # unlabelled reviews (aclImdb's unsup, saved with label -1) keep label -1
        frame = frame.assign(split=_split_names(frame, path.name))
        unlabelled = frame["split"] == "unsupervised"
    parts = [normalize_labels(frame[~unlabelled], source=path.name)]
    if unlabelled.any():  # their text is checked all the same
        parts.append(normalize_labels(frame[unlabelled].assign(label=0), source=path.name).assign(label=-1))
    frame = pd.concat(parts).sort_index()
    labelled = frame.loc[~unlabelled, "label"]
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
    splits = DatasetDict({name: _to_dataset(part, name, clean) for name, part in parts.items()})
    _check_classes(splits, Path(path).name)
    shared = shared_reviews(splits)
    if shared:
        warnings.warn(f"{shared:,} test review(s) in {Path(path).name} also appear word for word among its training "
                      "reviews: the test accuracy is partly on text the model has seen.", stacklevel=2)
    return splits


def _split_names(frame: pd.DataFrame, source: str) -> pd.Series:
    """Return the `split` column in lower case, or raise unless every value is train, test or unsupervised."""
    names = frame["split"].astype("string").str.strip().str.lower()
    unknown = names.isna() | ~names.isin(["train", "test", "unsupervised"])
    if unknown.any():
        values = frame.loc[unknown, "split"].drop_duplicates().head(3).tolist()
        shown = ", ".join(repr(v) if isinstance(v, str) else "(empty)" for v in values)
        raise ValueError(f"{source} has split values {shown} (row {_rows(unknown)}): use train, test or unsupervised.")
    return names.astype(str)


def _check_classes(splits: DatasetDict, source: str) -> None:
    """Raise ValueError unless the train and test splits each hold reviews of both classes."""
    for name in ("train", "test"):
        present = set(splits[name]["label"])
        if present != {0, 1}:
            only = ", ".join(LABEL_NAMES[label] for label in sorted(present)) or "no"
            raise ValueError(f"The {name} split of {source} holds only {only} reviews: a classifier needs both classes "
                             "in each of train and test.")


def shared_reviews(splits: DatasetDict) -> int:
    """Return how many test reviews also appear word for word among the training reviews (IMDB's own: 123)."""
    seen = set(splits["train"]["text"])
    return sum(text in seen for text in splits["test"]["text"])


def check_splits(splits: DatasetDict, source: str) -> DatasetDict:
    """Return a data set in the Hub's layout with 0/1 labels, or raise one sentence on what is wrong with it.

    The same checks as for a reader's own file: train and test splits, `text` and `label` columns,
    labels 0/1 (or words for them), no review without text, both classes in train and in test.
    """
    missing = [name for name in ("train", "test") if name not in splits]
    if missing:
        raise ValueError(f"{source} has no {' or '.join(missing)} split (splits found: "
                         f"{', '.join(splits) or 'none'}): it needs train and test, as stanfordnlp/imdb has.")
    checked = {}
    for name, split in splits.items():
        where = f"The {name} split of {source}"
        if len(split) == 0:
            raise ValueError(f"{where} is empty: it holds no reviews.")
        wanted = ["text", "label"] if {"text", "label"} <= set(split.column_names) else split.column_names
        frame = split.select_columns(wanted).to_pandas()
        if name == "unsupervised":  # no labels to check (the Hub's are -1)
            normalize_labels(frame.assign(label=0), where)
            checked[name] = split
            continue
        stored = frame.get("label")
        feature = split.features.get("label")
        if isinstance(feature, ClassLabel):  # ids mean the feature's names: read the names
            frame = frame.assign(label=[feature.int2str(i) if 0 <= i < feature.num_classes else i
                                        for i in stored.tolist()])
        labels = normalize_labels(frame, where)["label"]
        if pd.api.types.is_integer_dtype(stored) and (stored.to_numpy() == labels.to_numpy()).all():
            checked[name] = split
        else:  # words such as neg/pos: the 0/1 the notebooks expect
            checked[name] = split.remove_columns("label").add_column("label", labels.tolist())
    checked = DatasetDict(checked)
    _check_classes(checked, source)
    return checked


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
    """Load a data set with `datasets.load_dataset` (a Hub id or a local folder), checked, or raise one clear error."""
    from datasets import load_dataset

    folder = Path(dataset_id).expanduser()
    if folder.is_dir() or folder.is_absolute() or dataset_id.startswith("."):
        if not folder.is_dir():
            raise FileNotFoundError(f"No data set folder at {folder}: point {DATASET_ENV} at a folder laid out like "
                                    "stanfordnlp/imdb (plain_text/train-*.parquet, ...).")
        try:  # the files, resolved and passed on: their paths and times then key the cache (see _local_files)
            splits = load_dataset(str(folder), data_files=_local_files(folder))
        except (ValueError, OSError, DatasetsError) as error:  # no data files, a broken file, splits that differ
            raise ValueError(f"{folder} cannot be read as a data set laid out like stanfordnlp/imdb "
                             f"({type(error).__name__}: {str(error).splitlines()[0][:200]}).") from None
        return check_splits(splits, str(folder))
    try:
        splits = load_dataset(dataset_id, revision=revision)
    except _NETWORK_ERRORS as error:  # offline mode, no connection, a 404: OSErrors (httpx's are not)
        raise ConnectionError(
            f"Could not download {dataset_id} from the Hugging Face Hub ({type(error).__name__}). Offline, set "
            f"{DATASET_ENV} to a local copy laid out like it, or {DATA_ENV} to your own IMDB file or aclImdb/ folder."
        ) from None
    return check_splits(splits, dataset_id)


def _local_files(folder: Path):
    """Return the data files `load_dataset` finds in a local folder, with each file's modification time.

    Given a folder whose README names its splits (as stanfordnlp/imdb's does), `load_dataset` keys
    its cache on the folder's name and the README alone: a second folder of the same name, or the
    same folder with other files, is served the first one's reviews (measured with datasets 4.0 and 5.2). Passed
    back explicitly, the resolved files key the cache by path and modification time.
    """
    from datasets import load_dataset_builder

    return load_dataset_builder(str(folder)).config.data_files


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
