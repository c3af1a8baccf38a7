"""Shared fixtures: small local data files, and definitions pulled out of the notebooks."""

from __future__ import annotations

import ast
import json
import math
import os
import string
import subprocess
import sys
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers import BertConfig, BertForMaskedLM

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def notebook_definitions(notebook: str, names: list[str], **imports: object) -> dict:
    """Return the functions, classes and constants called `names` as a committed notebook defines them.

    `imports` are the names those definitions use that the notebook imported from helpers.
    """
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    nodes = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]).replace("!pip", "pass  # pip"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in names:
                nodes.append(node)
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) in names for t in node.targets):
                nodes.append(node)
    found = {n.name if hasattr(n, "name") else n.targets[0].id for n in nodes}
    assert found == set(names), f"{notebook} does not define {set(names) - found}"
    namespace = {"math": math, "torch": torch, "nn": nn, "F": F, "string": string, "unicodedata": unicodedata}
    namespace.update(imports)
    exec(compile(ast.Module(body=nodes, type_ignores=[]), notebook, "exec"), namespace)
    return {name: namespace[name] for name in names}


@pytest.fixture
def reviews_frame() -> pd.DataFrame:
    """Twenty short labelled reviews, ten of each class, with HTML line breaks."""
    texts = [f"Review {i}.<br /><br />It was {'great' if i % 2 else 'awful'}." for i in range(20)]
    return pd.DataFrame({"text": texts, "label": [i % 2 for i in range(20)]})


@pytest.fixture
def imdb_folder() -> Path:
    """The whole IMDB in the Hub's layout, named by $TUTORIAL_DATASET (the Makefile and .ci/run set it)."""
    value = os.environ.get("TUTORIAL_DATASET")
    assert value and Path(value).is_dir(), ("set TUTORIAL_DATASET to a folder laid out like stanfordnlp/imdb "
                                           "(make test does this when ../shared/data/imdb exists)")
    return Path(value)


@pytest.fixture(autouse=True)
def hub_switches_restored():
    """Undo HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set during a test (quiet_libraries sets them for good)."""
    saved = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove the tutorial's environment variables so each test sets exactly what it needs."""
    for name in ("TUTORIAL_PROFILE", "TUTORIAL_DATA", "TUTORIAL_MODEL", "TUTORIAL_DATASET", "TUTORIAL_SCALE",
                 "TUTORIAL_WORKDIR", "TUTORIAL_MODELS_DIR", "TUTORIAL_PRECISION"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def run_offline(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run Python code in a fresh interpreter with the Hugging Face Hub switched off from the start."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORIAL_")}
    full_env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


class StubTokenizer:
    """Just what DataCollatorForLanguageModeling needs: a 50-token vocabulary, ids 0-3 special."""

    mask_token, pad_token, pad_token_id, _pad_token = "[MASK]", "[PAD]", 0, "[PAD]"
    padding_side = "right"

    def __len__(self) -> int:
        return 50

    def convert_tokens_to_ids(self, token: str) -> int:
        return 3

    def get_special_tokens_mask(self, ids: list[int], already_has_special_tokens: bool = True) -> list[int]:
        return [int(i < 4) for i in ids]

    def pad(self, features, return_tensors="pt", pad_to_multiple_of=None, **kwargs):
        return {"input_ids": torch.tensor([f["input_ids"] for f in features])}


def tiny_model() -> BertForMaskedLM:
    """A 2-layer BERT of width 32 over a 50-token vocabulary, the same weights every call."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    return BertForMaskedLM(config)


@pytest.fixture(scope="session")
def classifier_folder(tmp_path_factory) -> Path:
    """A small untrained classifier (64 positions), real MiniLM tokenizer, saved as notebook 04 saves its own."""
    from transformers import AutoTokenizer

    from helpers.classification import BertForReviewClassification
    from helpers.models import minilm_path, save_atomically

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30_522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64, num_labels=2)
    folder = tmp_path_factory.mktemp("served") / "classifier"
    save_atomically(BertForReviewClassification(config).eval(), AutoTokenizer.from_pretrained(minilm_path()), folder)
    return folder
