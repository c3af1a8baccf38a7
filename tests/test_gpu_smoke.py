"""The `gpu` profile's code path, executed end to end on a CPU at a tiny scale (`make colab`).

Most readers run the notebooks at the `gpu` profile on Colab, which CI cannot reach: no GPU and
no Hub. This run executes every notebook from its source with TUTORIAL_PROFILE=gpu, a tiny
randomly initialised BERT with bert-base's vocabulary in place of bert-base-uncased, and a
stratified subset of the real reviews (../shared/data/imdb: the Hub's text, in the Hub's layout and
order: sorted by label, unlabelled reviews -1) that `helpers.data.load_reviews` reads with
`load_dataset`, as it reads the Hub. TUTORIAL_SCALE shrinks steps and evaluation blocks; the code paths stay those of
the `gpu` profile. Outputs are not compared (nbval compares the committed `cpu` run); every cell
must run, and every assertion must hold or say why it does not apply at this scale.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from helpers.models import minilm_path
from notebooks.build import SOURCES, execute, notebook_from_source

# Appended to each notebook: name what it left on another device than its session's. On this CPU
# everything is on the CPU; on a GPU the same line names a model the notebook forgot to place.
# Read on an H200 (2026-12-04, TUTORIAL_PROFILE unset, this file's tiny BERT and data, every notebook
# passing): what stays on the CPU there is there on purpose: 01's toy tensors and layers (sections
# 1-7), 03's masking statistics on token ids and its unigram counts, 06's gradient-averaging demo on
# an 8-input layer and its serving sections (int8 kernels run on CPUs), 07's served models (`variant`).
AUDIT = "from helpers.device import misplaced\nprint('MISPLACED', misplaced(globals(), session.device))"
SCALE = "0.01"  # of the gpu profile's steps: 10 MLM steps, 1 epoch of the classifier
PER_SPLIT = 96  # reviews of each label in each labelled split (twice as many unlabelled ones)
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
    """Save a 4-layer BERT of width 96 with bert-base's 30,522-token vocabulary and an MLM head.

    4 heads, not bert-base's 12: at 512 tokens and batch 32 such a narrow model's time goes to the
    T x T score matrices, one per head (12 heads took 13 s a step, most of the smoke run); notebook
    01 needs 4 heads, one per attention pattern it plots.
    """
    config = BertConfig(hidden_size=96, num_hidden_layers=4, num_attention_heads=4, intermediate_size=192,
                        max_position_embeddings=512)
    BertForMaskedLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)
    return folder


def write_hub_layout(imdb: Path, folder: Path, per_label: int = PER_SPLIT) -> Path:
    """Copy a seeded subset of each split of the real data set, keeping the Hub's layout and its label-sorted order."""
    (folder / "plain_text").mkdir(parents=True)
    for name in ("train", "test", "unsupervised"):
        [source] = (imdb / "plain_text").glob(f"{name}-*.parquet")
        frame = pd.read_parquet(source)
        part = frame.groupby("label", group_keys=False).sample(n=per_label if name != "unsupervised" else 2 * per_label,
                                                               random_state=0)
        part.sort_index().to_parquet(folder / "plain_text" / source.name, index=False)  # the Hub's order
    (folder / "README.md").write_text(HUB_README)
    return folder


@pytest.mark.smoke
def test_every_notebook_runs_at_the_gpu_profile_on_a_tiny_model(tmp_path, imdb_folder, monkeypatch, capsys):
    monkeypatch.setenv("TUTORIAL_PROFILE", "gpu")
    monkeypatch.setenv("TUTORIAL_MODEL", str(write_tiny_bert(tmp_path / "tiny-bert")))
    monkeypatch.setenv("TUTORIAL_DATASET", str(write_hub_layout(imdb_folder, tmp_path / "imdb-hub")))
    monkeypatch.setenv("TUTORIAL_SCALE", SCALE)
    monkeypatch.setenv("TUTORIAL_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv("TUTORIAL_DATA", raising=False)  # the gpu profile must read the Hub layout
    monkeypatch.setenv("TUTORIAL_MODELS_DIR", "")  # never the reader's own models folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    seconds, elsewhere = {}, {}
    for source in sorted(SOURCES.glob("[0-9]*.py")):
        notebook = notebook_from_source(source)
        notebook.cells.append(nbformat.v4.new_code_cell(AUDIT))
        start = time.perf_counter()
        execute(notebook, source.stem)  # raises CellExecutionError with the failing cell
        seconds[source.stem] = time.perf_counter() - start
        text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert '"profile": "gpu"' in text, f"{source.stem} did not run at the gpu profile"
        elsewhere[source.stem] = text.rsplit("MISPLACED ", 1)[1].strip()
    with capsys.disabled():
        print("\ngpu-profile smoke run: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
        print("left off the session's device: " + "; ".join(f"{k} {v}" for k, v in elsewhere.items()))

