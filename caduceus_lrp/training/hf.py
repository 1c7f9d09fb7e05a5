"""The datasets `transformers.Trainer` takes, for fine-tuning the classifier the Hugging Face way.

`CaduceusClassifier` is a `transformers` model whose forward takes `input_ids` and `labels` and
returns the loss, so `Trainer(model=..., train_dataset=TrainerDataset(ds, "train"))` trains it
like any Hugging Face classifier (all of it; the project's own loop adds the frozen-layer cache,
task focus and RC handling for ph models).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data import SequenceDataset

__all__ = ["TrainerDataset"]


class TrainerDataset(torch.utils.data.Dataset):
    """One split of a SequenceDataset as items {"input_ids": (l,) int64, "labels": (t,) float32}."""

    def __init__(self, dataset: SequenceDataset, split: str = "train"):
        rows = np.flatnonzero((dataset.split == split) | (split == "all"))
        self.tokens = torch.from_numpy(dataset.tokens[rows].astype(np.int64))
        self.labels = torch.from_numpy(dataset.labels[rows])

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, i):
        return {"input_ids": self.tokens[i], "labels": self.labels[i]}
