"""Masked-language-model pretraining of a small Caduceus on unlabelled sequences (the demo backbone).

`caduceus-lrp pretrain` pretrains on the training split of a dataset (the embedded one by
default; labels are ignored) and writes a Hugging Face folder (config.json, model.safetensors)
that `--pretrained` loads, as users pretrain Caduceus on their own genome. Masking follows BERT
and Caduceus: `mask_prob` of the positions are predicted; of those 80 % become [MASK], 10 % a
random base, 10 % stay. Glossary: b batch, l length, v vocabulary.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from ..cli import option
from ..config import CaduceusConfig
from ..data import DataConfig, load_dataset
from ..errors import InputError
from ..io_utils import atomic_path
from ..model import build_caduceus
from ..sequence import BASE_TOKENS, MASK_TOKEN, N_TOKEN
from .optim import adamw, epoch_batches, lr_factor
from .runtime import cpu_threads

__all__ = ["PretrainConfig", "random_windows", "mask_tokens", "pretrain", "pretrained_backbone"]

log = logging.getLogger(__name__)


@dataclass
class PretrainConfig:
    """Size of the backbone and the masked-LM schedule; one --flag per field."""

    d_model: int = option(32, "width of the backbone")
    n_layer: int = option(4, "number of BiMamba layers")
    rcps: bool = option(True, "RC-equivariant (ps) or not (ph)")
    steps: int = option(600, "optimizer steps")
    batch_size: int = option(64, "sequences per step")
    lr: float = option(4e-3, "peak learning rate (cosine, warm-up)")
    warmup_frac: float = option(0.05, "fraction of steps of warm-up")
    weight_decay: float = option(0.1, "AdamW weight decay (none on A_log, D, norms, biases)")
    mask_prob: float = option(0.15, "fraction of positions predicted")
    crop_len: int = option(200, "each step sees a random window of this length of each sequence "
                                "(the whole sequence when shorter), so the cost of a step does "
                                "not grow with the data's sequence length")
    pretrain_seed: int = option(0, "seed of init, masking and order")
    threads: int = option(1, "CPU threads (0: all cores)")
    out: str = option("pretrained_backbone", "output Hugging Face folder")

    def __post_init__(self):
        for name, ok in (("d-model", self.d_model >= 1), ("n-layer", self.n_layer >= 1),
                         ("steps", self.steps >= 1), ("batch-size", self.batch_size >= 1),
                         ("crop-len", self.crop_len >= 1),
                         ("lr", self.lr > 0), ("mask-prob", 0 < self.mask_prob < 1),
                         ("warmup-frac", 0 <= self.warmup_frac < 1), ("threads", self.threads >= 0)):
            if not ok:
                raise InputError(f"--{name}: invalid value {getattr(self, name.replace('-', '_'))!r}")


def random_windows(ids, length: int, gen: torch.Generator):
    """ids (b, l) -> (b, min(l, length)): a random window of each row."""
    if ids.shape[1] <= length:
        return ids
    starts = torch.randint(0, ids.shape[1] - length + 1, (len(ids), 1), generator=gen)
    return ids.gather(1, starts + torch.arange(length))


def mask_tokens(ids, mask_prob: float, gen: torch.Generator):
    """ids (b, l) -> (masked ids (b, l), targets (b, l) with -100 where not predicted).
    N tokens are never predicted."""
    predicted = (torch.rand(ids.shape, generator=gen) < mask_prob) & (ids != N_TOKEN)
    action = torch.rand(ids.shape, generator=gen)
    random_base = torch.as_tensor(BASE_TOKENS)[torch.randint(0, 4, ids.shape, generator=gen)]
    masked = ids.clone()
    masked[predicted & (action < 0.8)] = MASK_TOKEN
    swap = predicted & (action >= 0.8) & (action < 0.9)
    masked[swap] = random_base[swap]
    return masked, torch.where(predicted, ids, torch.full_like(ids, -100))


def pretrain(cfg: PretrainConfig, data: DataConfig) -> dict:
    """Pretrain on the training split of `data`; write the folder; return the loss history."""
    with cpu_threads(cfg.threads):
        return _pretrain(cfg, data)


def _pretrain(cfg: PretrainConfig, data: DataConfig) -> dict:
    ds = load_dataset(data)
    tokens = torch.from_numpy(ds.tokens[ds.split == "train"].astype(np.int64))
    model_cfg = CaduceusConfig(d_model=cfg.d_model, n_layer=cfg.n_layer, rcps=cfg.rcps,
                               vocab_size=16)
    model = build_caduceus(model_cfg, seed=cfg.pretrain_seed).train()
    optimizer = adamw(model, cfg.lr, cfg.lr, cfg.weight_decay)
    log.info(f"pretraining a {cfg.d_model}-wide {cfg.n_layer}-layer Caduceus "
             f"({sum(p.numel() for p in model.parameters()):,} parameters) on {len(tokens)} "
             f"sequences of {tokens.shape[1]} bp for {cfg.steps} steps")
    gen = torch.Generator().manual_seed(cfg.pretrain_seed)
    batches, epoch, history = [], 0, []
    warmup = round(cfg.warmup_frac * cfg.steps)
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="masked-LM pretraining", unit="step", disable=None)
    for step in bar:
        if not batches:
            batches = epoch_batches(len(tokens), cfg.batch_size, cfg.pretrain_seed, epoch)
            epoch += 1
        ids = random_windows(tokens[batches.pop(0)], cfg.crop_len, gen)
        ids, targets = mask_tokens(ids, cfg.mask_prob, gen)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg.steps, warmup)
        loss = model(input_ids=ids, labels=targets).loss  # masked-LM cross-entropy
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step + 1}: the loss is {loss.item()}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        history.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(history[-50:]):.4f}")
        if bar.disable and (step + 1) % max(1, cfg.steps // 10) == 0:  # a log: every tenth
            log.info(f"step {step + 1}/{cfg.steps}: masked-LM loss {np.mean(history[-50:]):.4f}")
    model.eval().save_pretrained(cfg.out)
    with atomic_path(Path(cfg.out) / "pretrain_config.json") as tmp:
        tmp.write_text(json.dumps({"pretrain": dataclasses.asdict(cfg),
                                   "data": dataclasses.asdict(data),
                                   "final_loss": float(np.mean(history[-50:]))}, indent=2) + "\n")
    log.info(f"wrote {cfg.out} after {time.perf_counter() - t0:.0f} s; masked-LM loss "
             f"{np.mean(history[:50]):.4f} (first 50 steps) -> {np.mean(history[-50:]):.4f} "
             f"(last 50; uniform over 4 bases: {np.log(4):.4f})")
    return {"loss": history}


def pretrained_backbone(data: DataConfig, steps: int, threads: int = 0) -> Path:
    """The folder of a backbone pretrained (PretrainConfig's defaults, `steps` steps) on the
    training split of `data`, built once and kept in the data cache under a hash of the training
    sequences and the pretraining settings; later calls with the same data return it at once."""
    ds = load_dataset(data)
    cfg = PretrainConfig(steps=steps, threads=threads)
    digest = hashlib.sha256(np.ascontiguousarray(ds.tokens[ds.split == "train"]).tobytes())
    settings = dataclasses.asdict(cfg) | {"out": None, "threads": None}  # neither changes it
    digest.update(json.dumps(settings, sort_keys=True).encode())
    folder = data.cache / f"backbone-{digest.hexdigest()[:16]}"
    if (folder / "model.safetensors").is_file():
        log.info(f"backbone: reusing {folder} (pretrained on this dataset's training sequences)")
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        pretrain(dataclasses.replace(cfg, out=str(tmp)), data)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
