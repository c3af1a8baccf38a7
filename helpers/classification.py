"""Sentiment classification with BERT: the model, batches of encoded reviews, and scoring.

Introduced in notebook 04; notebook 06 trains the same model on several processes and serves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoTokenizer, BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

from helpers.batching import Batch, pad_batch, training_batches
from helpers.data import LABEL_NAMES
from helpers.device import autocast, free_memory
from helpers.models import attention_kernel, check_model_folder, load_pretrained
from helpers.stats import predicted_labels
from helpers.tokenization import encode_head_tail, encode_windows
from helpers.training import TrainConfig, TrainingLoop

MAX_CHARACTERS = 100_000  # a review longer than this is refused; the longest of IMDB's 50,000 has 13,704
# Reviews per scoring batch: on 2 CPU cores batches of 16 score 8 % faster than batches of 64 with bf16
# and 17 % faster in float32 (benchmarks/results/batching.md); a GPU needs larger batches to be kept busy.
SCORING_BATCH = {"cpu": 16}
SCORING_BATCH_ELSEWHERE = 64


def scoring_batch_size(device: torch.device) -> int:
    """Return how many reviews `predict_logits` scores at once on `device` unless told."""
    return SCORING_BATCH.get(device.type, SCORING_BATCH_ELSEWHERE)


class BertForReviewClassification(BertForSequenceClassification):
    """BertForSequenceClassification that averages the token vectors instead of using [CLS]'s pooler.

    The one modelling change of notebook 04, where its lines are written out. The unused pooler is
    removed so that DDP sees no idle parameters. `forward` takes BERT's own inputs and options; an
    argument it does not know is an error, not silently dropped.
    """

    def __init__(self, config) -> None:
        super().__init__(config)
        self.bert.pooler = None

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, inputs_embeds: torch.Tensor | None = None) -> SequenceClassifierOutput:
        if return_dict is False:
            raise ValueError("BertForReviewClassification always returns a SequenceClassifierOutput (return_dict).")
        if attention_mask is None:  # (B, T): every position is a real token
            shape = input_ids.shape if inputs_embeds is None else inputs_embeds.shape[:2]
            attention_mask = torch.ones(shape, dtype=torch.long, device=self.device)
        encoded = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            inputs_embeds=inputs_embeds,  # token vectors instead of ids (notebook 07's gradients)
                            output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        hidden = encoded.last_hidden_state  # (B, T, d_model)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1): 0 at padding
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)  # (B, d_model): mean over real tokens
        logits = self.classifier(self.dropout(pooled)).float()  # (B, n_labels)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states,
                                        attentions=encoded.attentions)


def classifier_options(profile) -> dict:
    """Return the `from_pretrained` options of notebook 04's classifier: label names, dropout, attention kernel."""
    return {"num_labels": 2, "id2label": dict(enumerate(LABEL_NAMES)),
            "label2id": {name: i for i, name in enumerate(LABEL_NAMES)},
            "hidden_dropout_prob": profile.dropout, "attention_probs_dropout_prob": profile.attention_dropout,
            "attn_implementation": profile.attention_kernel}


def new_classifier(profile, encoder: str | Path = "base", seed: int | None = None) -> BertForReviewClassification:
    """Return notebook 04's classifier: the encoder of `encoder` ("base" or a folder), a new head drawn with `seed`.

    With `profile.freeze_word_embeddings` the token embeddings are left out of training.
    """
    torch.manual_seed(profile.seed if seed is None else seed)  # the head's initial weights
    if encoder == "base":
        model = load_pretrained(BertForReviewClassification, profile, **classifier_options(profile))
    else:
        check_model_folder(Path(encoder))
        model = BertForReviewClassification.from_pretrained(encoder, **classifier_options(profile))
    model.bert.embeddings.word_embeddings.requires_grad_(not profile.freeze_word_embeddings)
    return model


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Tokenize reviews, keeping the first quarter and the last three quarters of an over-long one."""
    if not texts:
        raise ValueError("No reviews to encode: the list is empty.")
    return encode_head_tail(tokenizer, list(texts), max_length, head=max_length // 4)


def encode_read_whole(tokenizer, texts: Sequence[str], max_length: int) -> list[list[list[int]]]:
    """Tokenize reviews into windows of `max_length` tokens that together read all of each review."""
    if not texts:
        raise ValueError("No reviews to encode: the list is empty.")
    return encode_windows(tokenizer, list(texts), max_length)


def classification_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Return the cross-entropy of the model's logits against the batch's labels."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss


@torch.no_grad()
def predict_logits(model: nn.Module, encoded: Sequence[Sequence[int]], pad_id: int, batch_size: int | None = None,
                   precision: str = "fp32", attention: str | None = "sdpa") -> np.ndarray:
    """Return the (negative, positive) logits of each encoded review, batching reviews of similar length together.

    `batch_size` reviews at a time (None: `scoring_batch_size` of the model's device). Attention
    runs with the kernel `attention` (None: the model's own): the fused SDPA scores faster than the
    written-out kernel even where that one trains faster. A batch that runs out of memory is
    retried at half the size, down to one review.
    """
    if attention is not None:
        with attention_kernel(model, attention):
            return predict_logits(model, encoded, pad_id, batch_size, precision, attention=None)
    model.eval()
    device = next(model.parameters()).device
    batch_size = batch_size or scoring_batch_size(device)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    found = np.empty((len(encoded), 2), dtype=np.float32)
    start = 0
    while start < len(order):
        chosen = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in pad_batch([encoded[i] for i in chosen], pad_id).items()}
        try:
            with autocast(device, precision):
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
        found[chosen] = logits.float().cpu().numpy()
        start += len(chosen)
    return found


def predict_probabilities(model: nn.Module, encoded: Sequence[Sequence[int]], pad_id: int,
                          batch_size: int | None = None, precision: str = "fp32",
                          attention: str | None = "sdpa") -> np.ndarray:
    """Return P(positive) for each encoded review (see `predict_logits`)."""
    logits = torch.from_numpy(predict_logits(model, encoded, pad_id, batch_size, precision, attention))
    return logits.softmax(dim=-1)[:, 1].numpy().astype(np.float64)


def predict_probabilities_windowed(model: nn.Module, windowed: Sequence[Sequence[Sequence[int]]], pad_id: int,
                                   batch_size: int | None = None, precision: str = "fp32") -> np.ndarray:
    """Return P(positive) for each review given as windows (`encode_read_whole`): its windows' logits averaged."""
    owner = np.repeat(np.arange(len(windowed)), [len(review) for review in windowed])
    logits = predict_logits(model, [window for review in windowed for window in review], pad_id, batch_size, precision)
    summed = np.zeros((len(windowed), 2))
    np.add.at(summed, owner, logits)
    averaged = torch.from_numpy(summed / np.bincount(owner, minlength=len(windowed))[:, None])
    return averaged.softmax(dim=-1)[:, 1].numpy().astype(np.float64)


def held_out_scores(model: nn.Module, encoded: Sequence[Sequence[int]], labels: Sequence[int], pad_id: int,
                    precision: str = "fp32") -> dict[str, float]:
    """Return the mean cross-entropy ("validation_loss") and the accuracy on labelled held-out reviews."""
    return probability_scores(predict_probabilities(model, encoded, pad_id, precision=precision), labels)


def probability_scores(probabilities: np.ndarray, labels: Sequence[int]) -> dict[str, float]:
    """Return the mean cross-entropy ("validation_loss") and the accuracy of P(positive) against the labels."""
    labels = np.asarray(labels)
    p_true = np.where(labels == 1, probabilities, 1 - probabilities)
    return {"validation_loss": float(-np.log(np.clip(p_true, 1e-7, 1)).mean()),
            "accuracy": float(np.mean(predicted_labels(probabilities) == labels))}


def steps_per_epoch(reviews: int, batch_size: int) -> int:
    """Return the optimizer steps of one pass over `reviews`: the last batch may be short, and still counts."""
    return math.ceil(reviews / batch_size)


def fine_tune(model: nn.Module, encoded: Sequence[Sequence[int]], labels: Sequence[int], pad_id: int, profile,
              seed: int | None = None, steps: int | None = None, evaluate=None, on_log=None,
              checkpoint_dir: Path | None = None, identity: dict | None = None,
              loss=classification_loss) -> tuple[nn.Module, list[dict]]:
    """Fine-tune with the profile's recipe (notebook 04); return (the trained model, the training history).

    `profile.epochs` passes (or `steps`) of length-grouped batches, AdamW with 6 % warm-up and linear
    decay, mixed precision; `evaluate(model) -> dict` runs every ceil(steps / 4) steps and at the last
    step (at most four times), `on_log(history)` at each log.
    `loss(model, batch)` is the cross-entropy against the labels unless given (notebook 07 distils).
    """
    seed = profile.seed if seed is None else seed
    steps = steps or profile.epochs * steps_per_epoch(len(encoded), profile.batch_size)
    quarter = math.ceil(steps / 4)  # steps // 4 would evaluate a fifth time, one step before the end (224, 225)
    config = TrainConfig(steps=steps, learning_rate=profile.learning_rate, precision=profile.precision, seed=seed,
                         log_every=max(1, steps // 20), checkpoint_every=quarter if checkpoint_dir else 0,
                         eval_every=quarter if evaluate else 0)
    trainer = TrainingLoop(model, loss, config, checkpoint_dir=checkpoint_dir, identity=identity)
    history = trainer.fit(training_batches(encoded, list(labels), profile.batch_size, pad_id, seed=seed),
                          evaluate=evaluate, on_log=on_log)
    return trainer.accelerator.unwrap_model(trainer.model), history


def train_short_classifier(profile, train, *, max_length: int, steps: int | None = None):
    """Fine-tune the profile's model for one epoch over `train` (or `steps`) at `max_length` tokens.

    Return (model on the CPU, tokenizer): a stand-in where notebook 04's classifier is missing.
    """
    tokenizer = load_pretrained(AutoTokenizer, profile)
    encoded = encode(tokenizer, train["text"], max_length)
    model, _ = fine_tune(new_classifier(profile), encoded, train["label"], tokenizer.pad_token_id, profile,
                         steps=steps or steps_per_epoch(len(encoded), profile.batch_size))
    return model.cpu().eval(), tokenizer


def check_reviews(texts: Sequence[str], first: int = 1) -> list[str]:
    """Return the reviews as strings, or raise ValueError with one sentence if there are none or one is unusable.

    `first` numbers the reviews in the messages: a stream's later batches start further on.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("Nothing to classify: give the text of at least one review.")
    of = f" of {len(texts)}" if first == 1 else ""
    for i, text in enumerate(texts, start=first):
        if not isinstance(text, str):
            raise ValueError(f"Review {i}{of} is {type(text).__name__} {text!r}, not text.")
        if not text.strip():
            raise ValueError(f"Review {i}{of} is blank: give the text of each review.")
        if len(text) > MAX_CHARACTERS:
            raise ValueError(f"Review {i} has {len(text):,} characters; the limit is {MAX_CHARACTERS:,} "
                             "(IMDB's longest review has 13,704).")
    return texts


def classify_reviews(model: nn.Module, tokenizer, texts: Sequence[str], max_length: int,
                     batch_size: int | None = None, precision: str = "fp32", first: int = 1) -> list[tuple[str, float]]:
    """Return (label name, probability of that label) for each review, in the order given.

    Each review is read whole, as notebook 04 scores the test reviews: one longer than `max_length`
    tokens through the windows that cover it, their logits averaged. A review without one token the
    model knows (only emoji, symbols it has no piece for, or invisible characters: [CLS] [UNK]...
    [SEP]) gets ("unknown", nan): the model would answer about 0.5 for it, a guess about nothing.
    `first` numbers the reviews in error messages.
    """
    texts = check_reviews(texts, first)
    windowed = encode_read_whole(tokenizer, texts, max_length)
    positive = predict_probabilities_windowed(model, windowed, tokenizer.pad_token_id, batch_size, precision)
    unknown = [all(i == tokenizer.unk_token_id for window in windows for i in window[1:-1]) for windows in windowed]
    return [("unknown", math.nan) if blind else ("positive", p) if label else ("negative", 1 - p)
            for p, label, blind in zip(positive.tolist(), predicted_labels(positive), unknown)]
