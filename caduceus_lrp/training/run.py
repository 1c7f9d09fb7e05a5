"""`run_training(cfg)`: the library entry of fine-tuning, one run or the best of several replicates."""
from __future__ import annotations

from ..data import load_dataset
from ..errors import InputError
from .config import TrainConfig
from .loop import check_data, load_backbone, train_once
from .runtime import torchrun_world
from .replicates import run_replicates

__all__ = ["run_training"]


def run_training(cfg: TrainConfig) -> dict:
    """Fine-tune (or train the CNN baseline) as configured; write the outputs; return the final
    metrics (`val.macro_auroc`, `test.macro_auroc`, per task, ...). With cfg.replicates > 1 the
    best of that many seeds on validation (`replicates.run_replicates`). The data are read and
    checked, and the backbone is built (pretrained on them when that is the default) and loaded
    once, before any replicate starts and opens its log, so that bad input stops here with one
    error and nothing written, and the replicates share one pretraining."""
    if cfg.model == "caduceus" and not (cfg.pretrained or cfg.arch) and cfg.data.data \
            and cfg.pretrain_steps and torchrun_world() > 1:
        raise InputError("--pretrained: under torchrun give a backbone (build one for these data "
                         "with `caduceus-lrp pretrain`), or --pretrain-steps 0")
    if cfg.replicates > 1:
        check_data(load_dataset(cfg.data), cfg)
        if cfg.model == "caduceus":
            load_backbone(cfg)
        return run_replicates(cfg)
    return train_once(cfg)
