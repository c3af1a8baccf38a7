"""The `gpu` profile's code path, executed end to end on a CPU at a tiny scale (`make colab`).

Most readers run the notebooks at the `gpu` profile on Colab, which CI cannot reach: no GPU and
no Hub. This run executes every notebook from its source with TUTORIAL_PROFILE=gpu, a tiny
randomly initialised BERT with bert-base's vocabulary in place of bert-base-uncased, and a copy
of the sample laid out like the pinned Hub data set (train, test and unsupervised splits, sorted
by label, unlabelled reviews -1) that `helpers.data.load_hub` reads with `load_dataset`, as it
reads the Hub. TUTORIAL_SCALE shrinks steps and evaluation blocks; the code paths stay those of
the `gpu` profile. Outputs are not compared (nbval compares the committed `cpu` run); every cell
must run, and every assertion must hold or say why it does not apply at this scale.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from helpers.models import minilm_path
from notebooks.build import SOURCES, execute, notebook_from_source

SCALE = "0.01"  # of the gpu profile's steps: 10 MLM steps, 1 epoch of the classifier
PER_SPLIT = 96  # reviews of each label in each labelled split (and unlabelled ones)
HUB_README = """---
configs:
- config_name: plain_text
  data_files:
  - split: train
    path: plain_text/train-*
  - split: test
    path: plain_text/test-*
  - split: unsupervised
    path: plain_text/unsupervised-*
  default: true
---
A local copy of stanfordnlp/imdb's layout for the smoke run.
"""


def write_tiny_bert(folder: Path) -> Path:
    """Save a 4-layer BERT of width 96 (12 heads, as bert-base) with its 30,522-token vocabulary and an MLM head."""
    config = BertConfig(hidden_size=96, num_hidden_layers=4, num_attention_heads=12, intermediate_size=192,
                        max_position_embeddings=512)
    BertForMaskedLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return folder


def write_hub_layout(sample: Path, folder: Path) -> Path:
    """Copy some of the sample into the pinned Hub data set's layout: sorted by label, unlabelled as -1."""
    frame = pd.read_parquet(sample)
    by_label = [frame[frame["label"] == label] for label in (0, 1)]
    (folder / "plain_text").mkdir(parents=True)
    splits = {
        "train": pd.concat([part.iloc[:PER_SPLIT] for part in by_label]),
        "test": pd.concat([part.iloc[PER_SPLIT:2 * PER_SPLIT] for part in by_label]),
        "unsupervised": pd.concat([part.iloc[2 * PER_SPLIT:3 * PER_SPLIT] for part in by_label]).assign(label=-1),
    }
    for name, part in splits.items():
        part[["text", "label"]].to_parquet(folder / "plain_text" / f"{name}-00000-of-00001.parquet", index=False)
    (folder / "README.md").write_text(HUB_README)
    return folder


@pytest.mark.smoke
def test_every_notebook_runs_at_the_gpu_profile_on_a_tiny_model(tmp_path, sample_path, monkeypatch, capsys):
    monkeypatch.setenv("TUTORIAL_PROFILE", "gpu")
    monkeypatch.setenv("TUTORIAL_MODEL", str(write_tiny_bert(tmp_path / "tiny-bert")))
    monkeypatch.setenv("TUTORIAL_DATASET", str(write_hub_layout(sample_path, tmp_path / "imdb-hub")))
    monkeypatch.setenv("TUTORIAL_SCALE", SCALE)
    monkeypatch.setenv("TUTORIAL_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv("TUTORIAL_DATA", raising=False)  # the gpu profile must read the Hub layout
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    seconds = {}
    for source in sorted(SOURCES.glob("[0-9]*.py")):
        notebook = notebook_from_source(source)
        start = time.perf_counter()
        execute(notebook, source.stem)  # raises CellExecutionError with the failing cell
        seconds[source.stem] = time.perf_counter() - start
        text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert '"profile": "gpu"' in text, f"{source.stem} did not run at the gpu profile"
    with capsys.disabled():
        print("\ngpu-profile smoke run: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
