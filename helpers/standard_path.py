"""The standard Hugging Face path to a review classifier, as the Hugging Face course teaches it.

Notebook 04 writes these lines out and times their steps beside its own classifier's (mean pooling,
head+tail truncation, frozen token embeddings, its own loop) on the same reviews;
`benchmarks/standard_path.py` trains the two for a whole epoch each and compares them over seeds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from accelerate.state import AcceleratorState
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

from helpers.device import pick_device
from helpers.models import load_pretrained


def train_the_standard_way(profile, texts: Sequence[str], labels: Sequence[int], seed: int = 0,
                           steps: int | None = None, callbacks: Sequence = ()):
    """Fine-tune `AutoModelForSequenceClassification` (the [CLS] pooler) with `Trainer`; return (model, tokenizer, s).

    The profile's budget (its epochs, or `steps`; batch size, learning rate, precision) and the
    libraries' defaults for the rest: the first `max_length` tokens of each review, dropout 0.1,
    every weight trained, padding per batch. The seconds are the Trainer's own training time.
    `callbacks` go to the Trainer (notebook 04 times its steps with one). Trainer leaves its mixed
    precision in Accelerate's process-wide state, where every later `Accelerator()` (our
    `TrainingLoop`'s) would inherit it; the state is reset before returning.
    """
    set_seed(seed)  # the new head's initial weights, then (inside Trainer) the batch order
    tokenizer = load_pretrained(AutoTokenizer, profile)
    model = load_pretrained(AutoModelForSequenceClassification, profile, num_labels=2)
    reviews = Dataset.from_dict({"text": list(texts), "label": [int(label) for label in labels]})
    reviews = reviews.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=profile.max_length),
                          batched=True, remove_columns=["text"])
    with tempfile.TemporaryDirectory() as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir, num_train_epochs=profile.epochs, max_steps=steps or -1,
            per_device_train_batch_size=profile.batch_size, learning_rate=profile.learning_rate,
            warmup_steps=0.06, weight_decay=0.01, seed=seed,
            bf16=profile.precision == "bf16", fp16=profile.precision == "fp16",
            save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
            use_cpu=pick_device().type == "cpu")  # the device our loop uses (CUDA, Apple's MPS or the CPU)
        trainer = Trainer(model=model, args=arguments, train_dataset=reviews, processing_class=tokenizer,
                          callbacks=list(callbacks))
        seconds = trainer.train().metrics["train_runtime"]
    AcceleratorState._reset_state()  # else a later Accelerator() inherits the Trainer's bf16/fp16
    return model.eval(), tokenizer, seconds
