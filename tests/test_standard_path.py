"""The standard Hugging Face path trains the [CLS]-pooler model with Trainer, reproducibly per seed."""

import ast
import dataclasses
import inspect
from pathlib import Path

import torch
from transformers import BertForSequenceClassification

from helpers import standard_path
from helpers.classification import encode, predict_probabilities
from helpers.profile import get_profile
from helpers.standard_path import train_the_standard_way

ROOT = Path(__file__).resolve().parent.parent

REVIEWS = ["A wonderful, moving film.", "Dull and far too long.", "I loved every minute.", "A waste of time.",
           "Great acting, great story.", "Awful script, awful cast.", "Charming and funny.", "Boring from the start."]
LABELS = [1, 0, 1, 0, 1, 0, 1, 0]


def test_the_standard_way_trains_a_cls_pooler_model_and_repeats_itself_with_a_seed(clean_env, classifier_folder):
    profile = dataclasses.replace(get_profile("cpu"), model_override=str(classifier_folder), precision="fp32",
                                  max_length=32, batch_size=4)
    model, tokenizer, seconds = train_the_standard_way(profile, REVIEWS, LABELS, seed=1, steps=2)
    assert type(model) is BertForSequenceClassification and model.bert.pooler is not None, "the [CLS] pooler"
    assert not model.training and seconds > 0
    again, _, _ = train_the_standard_way(profile, REVIEWS, LABELS, seed=1, steps=2)
    for (name, mine), theirs in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0, msg=name)  # the same seed, the same run
    probabilities = predict_probabilities(model, encode(tokenizer, REVIEWS, 32), tokenizer.pad_token_id)
    assert probabilities.shape == (8,), "scored like notebook 04's own classifier"


def test_notebook_04_writes_out_the_helpers_lines():
    """The function notebook 04 writes out is the helper the benchmark runs, line for line (docstrings aside)."""
    def body(tree: ast.AST) -> str:
        function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                        and n.name == "train_the_standard_way")
        statements = function.body[1:] if isinstance(function.body[0], ast.Expr) else function.body  # no docstring
        return "\n".join(ast.dump(statement) for statement in statements)

    notebook = ast.parse((ROOT / "notebooks" / "src" / "04_imdb_classification.py").read_text())
    helper = ast.parse(inspect.getsource(standard_path))
    assert body(notebook) == body(helper)


def test_the_standard_way_leaves_no_mixed_precision_behind(clean_env, classifier_folder):
    """Trainer writes its bf16 into Accelerate's process-wide state; our loop's later Accelerator() must not
    inherit it (in the suite it turned an fp32 replica run into bf16 autocast, 1.1e-4 off its launched twin)."""
    from accelerate import Accelerator

    profile = dataclasses.replace(get_profile("cpu"), model_override=str(classifier_folder), precision="bf16",
                                  max_length=32, batch_size=4)
    train_the_standard_way(profile, REVIEWS, LABELS, seed=0, steps=1)
    assert Accelerator().mixed_precision == "no"
