"""A smaller student taught by the classifier: knowledge distillation (Hinton et al., 2015).

Introduced in notebook 07. The student is the teacher's own lower layers (embeddings, the first
`layers` transformer layers, the classifier head): Patient KD's initialisation (Sun et al., 2019);
DistilBERT took one layer of every two instead, which `keep` allows (`benchmarks/students.py`
compares the two). It learns from the teacher's softened probabilities and from the labels.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from helpers.batching import Batch
from helpers.classification import BertForReviewClassification


def student_from_teacher(teacher: BertForReviewClassification, layers: int,
                         keep: Sequence[int] | None = None) -> BertForReviewClassification:
    """Return a copy of the teacher with `layers` of its transformer layers: its lowest ones, or those in `keep`.

    `keep` lists the teacher's layers to take, in order (for 3 of 6, (0, 2, 4): one of every two,
    as DistilBERT did); they become the student's layers 0, 1, 2. Embeddings and head are copied.
    """
    total = teacher.config.num_hidden_layers
    if not 1 <= layers < total:
        raise ValueError(f"A student keeps 1 to {total - 1} of the teacher's {total} layers, not {layers}.")
    keep = list(range(layers)) if keep is None else [int(i) for i in keep]
    if len(keep) != layers or keep != sorted(set(keep)) or keep[0] < 0 or keep[-1] >= total:
        raise ValueError(f"keep={keep} must list {layers} different layers of the teacher's 0-{total - 1}, in order.")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = layers
    student = BertForReviewClassification(config)
    taken = {}
    for key, value in teacher.state_dict().items():
        found = re.match(r"(.*encoder\.layer\.)(\d+)(\..*)", key)
        if found is None:
            taken[key] = value
        elif int(found[2]) in keep:  # the teacher's layer keep[i] becomes the student's layer i
            taken[f"{found[1]}{keep.index(int(found[2]))}{found[3]}"] = value
    student.load_state_dict(taken, strict=True)  # every weight of the student, and nothing else
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
