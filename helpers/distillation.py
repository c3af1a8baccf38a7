"""A smaller student taught by the classifier: knowledge distillation (Hinton et al., 2015).

Introduced in notebook 06. The student is the teacher's own lower layers (embeddings, the first
`layers` transformer layers, the classifier head): Patient KD's initialisation (Sun et al., 2019;
DistilBERT took one layer of every two instead), and learns from the teacher's softened
probabilities and from the labels.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from helpers.batching import Batch
from helpers.classification import BertForReviewClassification


def student_from_teacher(teacher: BertForReviewClassification, layers: int) -> BertForReviewClassification:
    """Return a copy of the teacher that keeps only its first `layers` transformer layers."""
    total = teacher.config.num_hidden_layers
    if not 1 <= layers < total:
        raise ValueError(f"A student keeps 1 to {total - 1} of the teacher's {total} layers, not {layers}.")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = layers
    student = BertForReviewClassification(config)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    dropped = {key for key in unexpected if not any(f"encoder.layer.{i}." in key for i in range(layers, total))}
    if missing or dropped:
        raise ValueError(f"The student does not match the teacher: missing {missing}, unexpected {sorted(dropped)}.")
    return student.to(teacher.device)


def distillation_loss(teacher: nn.Module, temperature: float = 2.0,
                      soft_weight: float = 0.5) -> Callable[[nn.Module, Batch], torch.Tensor]:
    """Return loss(student, batch): `soft_weight` x KL to the teacher's softened probabilities + the rest x label CE.

    The KL term is multiplied by temperature squared so that its gradients keep their size as the
    temperature changes (Hinton et al., 2015, section 2).
    """
    teacher.eval()

    def loss(student: nn.Module, batch: Batch) -> torch.Tensor:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        with torch.no_grad():
            teacher_logits = teacher(**inputs).logits.float()
        student_logits = student(**inputs).logits
        soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),
                        F.softmax(teacher_logits / temperature, dim=-1), reduction="batchmean")
        hard = F.cross_entropy(student_logits, batch["labels"])
        return soft_weight * soft * temperature**2 + (1 - soft_weight) * hard

    return loss
