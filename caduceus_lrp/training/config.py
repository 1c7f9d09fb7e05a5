"""TrainConfig: everything a fine-tuning run depends on, one --flag per field (`cli.add_arguments`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..cli import option
from ..data import DataConfig
from ..epi_head import POOLINGS
from ..errors import InputError
from .evaluation import CHANCE_P
from .frozen_cache import CACHE_DTYPES
from .losses import LOSSES

__all__ = ["MODELS", "ROUND_SEED_STEP", "TrainConfig"]

MODELS = ("caduceus", "cnn")
ROUND_SEED_STEP = 1000  # a further replicate round k trains seeds train_seed + ROUND_SEED_STEP k + j


@dataclass
class TrainConfig:
    """A fine-tuning run (or the CNN baseline's training); `data` holds the DataConfig."""

    model: str = option("caduceus", "caduceus: the fine-tuned backbone under the EPI head; cnn: "
                                    "the one-hot CNN baseline, trained and evaluated the same way",
                        choices=MODELS)
    pretrained: str | None = option(None, (
        "backbone checkpoint: a folder (config.json + model.safetensors) or a Hugging Face id "
        "(online). Default: on the embedded dataset the demo backbone shipped with the package "
        "(pretrained on its training sequences); on other data a backbone of the same size "
        "pretrained by masked-language modelling on the data's own training sequences "
        "(--pretrain-steps), built once and cached"))
    pretrain_steps: int = option(200, (
        "masked-LM pretraining steps of the backbone built for data other than the embedded "
        "dataset when no --pretrained or --arch is given; 0: the demo backbone instead"))
    arch: str | None = option(None, "published architecture to initialise randomly (official "
                                    "init), e.g. caduceus-ps_seqlen-1k_d_model-118_n_layer-4_lr-8e-3")
    unfreeze_layers: int = option(2, "top backbone layers that train (with the final norm and the "
                                     "head); the embedding and lower layers are frozen")
    pooling: str = option("max", "pooling over length in the head (lse: log-mean-exp, a smooth "
                                 "max whose gradient reaches every position; max+mean: both "
                                 "side by side)",
                          choices=tuple(POOLINGS))
    gradient_checkpointing: bool = option(False, "recompute unfrozen layers in the backward pass "
                                                 "(saves memory on long sequences)")
    cnn_filters: int = option(64, "CNN baseline: number of convolution filters")
    cnn_width: int = option(15, "CNN baseline: filter width (bp)")
    epochs: int = option(20, "maximum number of epochs (early stopping within them)")
    batch_size: int = option(16, "global batch size (split over torchrun ranks)")
    eval_batch_size: int = option(64, "batch size of the passes without gradient (the "
                                      "frozen-layer cache, evaluation)")
    lr: float = option(4e-3, "peak learning rate of the unfrozen backbone layers (all CNN layers)")
    head_lr: float = option(2e-2, "peak learning rate of the EPI head and the final norm")
    weight_decay: float = option(0.1, "AdamW weight decay of weight matrices (none on A_log, D, "
                                      "norms and biases)")
    warmup_frac: float = option(0.05, "fraction of the steps with a linear warm-up")
    min_lr_ratio: float = option(0.0, "learning rate at the end of the cosine, relative to the "
                                      "peak")
    grad_clip: float = option(0.0, "clip the gradient norm to this (0: no clipping)")
    patience: int = option(3, "stop after this many epochs without a better validation macro "
                              "auROC")
    loss: str = option("bce", "bce: binary cross-entropy per task (multi-label); ce: "
                              "cross-entropy, for labels with exactly one class per sequence",
                       choices=LOSSES)
    pos_weight: list[float] | None = option(None, "BCE positive weight per task (one per task)")
    task_focus: float = option(2.0, (
        "task weighting (bce): each task's loss term is weighted by its running mean training "
        "loss to this power, normalised to mean 1, so tasks the model still gets wrong weigh "
        "more; 0: equal weights"))
    train_seed: int = option(0, "seed of initialisation, shuffling and RC augmentation")
    replicates: int = option(2, (
        "train this many seeds (train-seed, train-seed + 1, ...) and keep the one with the best "
        "validation macro auROC; on CPU they run in parallel, one per core, on CUDA one after "
        "the other; 1 for a single run. Runs meant to be independent need train seeds at least "
        "this many apart (0, 2, 4 with 2 replicates)"))
    chance_rounds: int = option(1, (
        "with replicates: when the best of them cannot be told from chance on validation (its "
        f"macro auROC's label-permutation p-value above {CHANCE_P}), train this many further "
        f"rounds of --replicates seeds (train-seed + {ROUND_SEED_STEP} k + j in round k), "
        "keeping the best of all; 0: never"))
    frozen_cache: bool = option(True, "compute the frozen layers once and train on the cached "
                                      "outputs")
    cache_dtype: str = option("float16", "dtype of the frozen-layer cache",
                              choices=tuple(CACHE_DTYPES))
    frozen_cache_dir: str | None = option(None, "keep the frozen-layer cache on disk here (a "
                                                "memmap reused while data and weights are "
                                                "unchanged); default: in memory")
    device: str = option("auto", "cpu, cuda, cuda:N or auto (cuda when available)")
    threads: int = option(0, "CPU threads of torch and the numba scan per process; 0: all cores, "
                             "divided among the replicates trained in parallel (or the torchrun "
                             "ranks of a node); the backbone's pretraining uses them all")
    out_dir: str = option("final_models", "folder of best_model.pt, metrics and checkpoints")
    plots_dir: str = option("plots", "folder of epoch{N}_roc.png and dist_EPI.png")
    resume: bool = option(False, "continue from out_dir/last_checkpoint.pt")
    export_hf: str | None = option(None, "also write the best model as a Hugging Face folder "
                                         "here (AutoModelForSequenceClassification)")
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self):
        if isinstance(self.data, dict):
            self.data = DataConfig(**self.data)
        checks = [
            ("model", self.model in MODELS, f"choose one of {', '.join(MODELS)}"),
            ("pooling", self.pooling in POOLINGS, f"choose one of {', '.join(POOLINGS)}"),
            ("loss", self.loss in LOSSES, f"choose one of {', '.join(LOSSES)}"),
            ("task-focus", self.task_focus >= 0, "must be >= 0"),
            ("cache-dtype", self.cache_dtype in CACHE_DTYPES,
             f"choose one of {', '.join(CACHE_DTYPES)}"),
            ("unfreeze-layers", self.unfreeze_layers >= 0, "must be >= 0"),
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch-size", self.batch_size >= 1, "must be >= 1"),
            ("eval-batch-size", self.eval_batch_size >= 1, "must be >= 1"),
            ("lr", self.lr > 0, "must be positive"),
            ("head-lr", self.head_lr > 0, "must be positive"),
            ("weight-decay", self.weight_decay >= 0, "must be >= 0"),
            ("warmup-frac", 0 <= self.warmup_frac < 1, "must lie in [0, 1)"),
            ("min-lr-ratio", 0 <= self.min_lr_ratio <= 1, "must lie in [0, 1]"),
            ("grad-clip", self.grad_clip >= 0, "must be >= 0"),
            ("patience", self.patience >= 1, "must be >= 1"),
            ("replicates", self.replicates >= 1, "must be >= 1"),
            ("chance-rounds", self.chance_rounds >= 0, "must be >= 0"),
            ("threads", self.threads >= 0, "must be >= 0"),
            ("pretrain-steps", self.pretrain_steps >= 0, "must be >= 0"),
        ]
        for name, ok, what in checks:
            if not ok:
                value = getattr(self, name.replace("-", "_"))
                raise InputError(f"--{name}: {what} (got {value!r})")
        if self.pretrained and self.arch:
            raise InputError("--pretrained: give --pretrained or --arch, not both")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The config as YAML, readable back with `--config` (train_config.yaml)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)
