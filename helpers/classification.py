"""Sentiment classification with BERT: the model, batches of encoded reviews, and scoring.

Introduced in notebook 04; notebook 05 trains the same model on several processes and serves it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from transformers import BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

from helpers.batching import LengthGroupedBatchSampler
from helpers.tokenization import encode_head_tail
from helpers.training import PRECISIONS, Batch, free_memory


class BertForReviewClassification(BertForSequenceClassification):
    """BertForSequenceClassification that averages the token vectors instead of using [CLS]'s pooler.

    Mean pooling scored 1.4 points higher than the pooler on the IMDB sample (see the guide's
    measured starting points); the unused pooler is removed so that DDP sees no idle parameters.
    """

    def __init__(self, config) -> None:
        super().__init__(config)
        self.bert.pooler = None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None,
                **kwargs) -> SequenceClassifierOutput:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, d_model)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1): 0 at padding
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)  # (B, d_model): mean over real tokens
        logits = self.classifier(self.dropout(pooled)).float()  # (B, n_labels)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Tokenize reviews, keeping the first quarter and the last three quarters of an over-long one."""
    if not texts:
        raise ValueError("No reviews to encode: the list is empty.")
    return encode_head_tail(tokenizer, list(texts), max_length, head=max_length // 4)


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, labels: Sequence[int] | None = None) -> Batch:
    """Pad id lists to the longest one: input_ids, attention_mask (and labels when given)."""
    longest = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, :len(row)] = torch.tensor(row)
        attention_mask[i, :len(row)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if labels is not None:
        batch["labels"] = torch.tensor(list(labels), dtype=torch.long)
    return batch


def training_batches(
    encoded: Sequence[Sequence[int]], labels: Sequence[int], batch_size: int, pad_id: int, seed: int
) -> Callable[[int], DataLoader]:
    """Return `epoch -> DataLoader` of length-grouped, dynamically padded batches, reshuffled per epoch."""
    if len(encoded) != len(labels):
        raise ValueError(f"{len(encoded)} encoded reviews but {len(labels)} labels.")
    rows = list(zip(encoded, labels))
    lengths = [len(ids) for ids in encoded]

    def for_epoch(epoch: int) -> DataLoader:
        sampler = LengthGroupedBatchSampler(lengths, batch_size, seed=seed)
        sampler.set_epoch(epoch)
        return DataLoader(rows, batch_sampler=sampler,
                          collate_fn=lambda chunk: pad_batch([r[0] for r in chunk], pad_id, [r[1] for r in chunk]))

    return for_epoch


def classification_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Return the cross-entropy of the model's logits against the batch's labels."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss


@torch.no_grad()
def predict_probabilities(model: nn.Module, encoded: Sequence[Sequence[int]], pad_id: int,
                          batch_size: int = 64, precision: str = "fp32") -> np.ndarray:
    """Return P(positive) for each encoded review, batching reviews of similar length together.

    A batch that runs out of memory is retried at half the size, down to one review.
    """
    model.eval()
    device = next(model.parameters()).device
    dtype = PRECISIONS[precision]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    probabilities = np.empty(len(encoded), dtype=np.float64)
    start = 0
    while start < len(order):
        chosen = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in pad_batch([encoded[i] for i in chosen], pad_id).items()}
        try:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(**batch).logits
        except torch.OutOfMemoryError:
            logits = None  # leave the except block before freeing: its traceback holds the activations
        if logits is None:
            del batch
            free_memory()
            if batch_size == 1:
                raise torch.OutOfMemoryError(
                    f"Out of memory scoring a single review of {len(encoded[chosen[0]])} tokens: "
                    "use a smaller max_length, or score on the CPU."
                )
            batch_size //= 2
            print(f"Out of memory while scoring: batches of {batch_size} reviews from now on.")
            continue
        probabilities[chosen] = logits.float().softmax(dim=-1)[:, 1].cpu().numpy()
        start += len(chosen)
    return probabilities


def train_short_classifier(profile, train, max_length: int = 256, steps: int | None = None):
    """Fine-tune the profile's model for one epoch over `train` (or `steps`) at `max_length` tokens.

    Return (model on the CPU, tokenizer): a stand-in where notebook 04's classifier is missing.
    """
    from transformers import AutoTokenizer

    from helpers.models import load_pretrained
    from helpers.training import TrainConfig, Trainer

    tokenizer = load_pretrained(AutoTokenizer, profile)
    model = load_pretrained(BertForReviewClassification, profile, num_labels=2)
    encoded = encode(tokenizer, train["text"], max_length)
    steps = steps or max(1, len(encoded) // profile.batch_size)
    config = TrainConfig(steps=steps, learning_rate=profile.learning_rate, precision=profile.precision,
                         seed=profile.seed)
    trainer = Trainer(model, classification_loss, config)
    trainer.fit(training_batches(encoded, train["label"], profile.batch_size, tokenizer.pad_token_id, profile.seed))
    return trainer.accelerator.unwrap_model(trainer.model).cpu().eval(), tokenizer


def classify_reviews(model: nn.Module, tokenizer, texts: Sequence[str], max_length: int,
                     batch_size: int = 64, precision: str = "fp32") -> list[tuple[str, float]]:
    """Return (label name, probability of that label) for each review, in the order given."""
    texts = [text for text in texts]
    empty = [i for i, text in enumerate(texts) if not str(text).strip()]
    if not texts or empty:
        where = f" (review {empty[0] + 1} of {len(texts)} is blank)" if texts else ""
        raise ValueError(f"Nothing to classify{where}: give the text of at least one review.")
    positive = predict_probabilities(model, encode(tokenizer, texts, max_length), tokenizer.pad_token_id,
                                     batch_size, precision)
    return [("positive", p) if p >= 0.5 else ("negative", 1 - p) for p in positive.tolist()]
