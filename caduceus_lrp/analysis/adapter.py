"""The bridge to tangermeme: this project's models and one-hot layout on tangermeme's, batched
predictions, and the interval every analysis reports.

Glossary: N sequences, L length, t tasks. This project's one-hot is (N, L, 4) over A, C, G, T
and its models take `forward(onehot=...)` and return logits (N, t) or an output with
`.logits` (`explanation_model.logits_of`); tangermeme works on (N, 4, L) tensors and calls
`model(X)`. `TangermemeModel` wraps a model for tangermeme, `to_ncl` / `to_nlc` convert arrays,
`predict_logits` runs `tangermeme.predict.predict` and `mean_interval` gives the mean of paired
differences with its Student-t 95 % interval.
"""
from __future__ import annotations

import numpy as np
import torch

from ..explanation_model import logits_of

__all__ = ["TangermemeModel", "to_ncl", "to_nlc", "device_of", "predict_logits",
           "mean_interval", "LEVEL"]

LEVEL = 0.95  # the level of every interval the analyses report


class TangermemeModel(torch.nn.Module):
    """A project model as tangermeme calls it: forward(X (b, 4, L)) -> logits (b, t)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, X):
        return logits_of(self.model, X.transpose(1, 2))


def to_ncl(x) -> torch.Tensor:
    """One-hot (N, L, 4) (numpy or torch) -> float32 tensor (N, 4, L), contiguous."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return x.transpose(1, 2).contiguous()


def to_nlc(X) -> np.ndarray:
    """A tangermeme tensor (N, 4, L) -> float32 numpy (N, L, 4)."""
    return X.detach().cpu().float().numpy().transpose(0, 2, 1).copy()


def device_of(device=None) -> torch.device:
    """The device to run on: `device`, or the CPU (the project's default; tangermeme's own
    default would be CUDA when present)."""
    return torch.device(device) if device is not None else torch.device("cpu")


def predict_logits(model, x, batch_size: int = 128, device=None) -> np.ndarray:
    """Logits (N, t) as float64 of one-hot `x` (N, L, 4) or a tangermeme tensor (N, 4, L),
    batched by tangermeme.predict.predict (the model comes back on its device, in its mode)."""
    from tangermeme.predict import predict

    X = x if isinstance(x, torch.Tensor) and x.shape[1] == 4 else to_ncl(x)
    wrapped = model if isinstance(model, TangermemeModel) else TangermemeModel(model)
    y = predict(wrapped, X, batch_size=batch_size, device=device_of(device))
    return y.double().numpy()


def mean_interval(diffs, level: float = LEVEL):
    """(mean, low, high) along axis 0 of paired differences diffs (n, ...): the Student-t
    interval mean +- t_{(1+level)/2, n-1} sd / sqrt(n); NaN bounds for n < 2."""
    from scipy import stats

    diffs = np.asarray(diffs, dtype=np.float64)
    n = diffs.shape[0]
    mean = diffs.mean(axis=0)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    half = stats.t.ppf((1 + level) / 2, n - 1) * diffs.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half
