"""`run_training(cfg)`: the library entry of fine-tuning, one run or the best of several replicates."""
from __future__ import annotations

from ..data import load_dataset
from .config import TrainConfig
from .loop import check_data, train_once
from .replicates import run_replicates

__all__ = ["run_training"]


def run_training(cfg: TrainConfig) -> dict:
    """Fine-tune (or train the CNN baseline) as configured; write the outputs; return the final
    metrics (`val.macro_auroc`, `test.macro_auroc`, per task, ...). With cfg.replicates > 1 the
    best of that many seeds on validation (`replicates.run_replicates`); the data are read and
    checked first, so that bad input stops here with one error, not once per replicate."""
    if cfg.replicates > 1:
        check_data(load_dataset(cfg.data), cfg)
        return run_replicates(cfg)
    return train_once(cfg)
