"""What a backbone's frozen layers already know about each task: a linear probe, against a motif scan.

    python experiments/backbone_probe.py [--pretrained FOLDER] [--unfreeze-layers 2]

The frozen part of the fine-tuned model (embedding and all but the top --unfreeze-layers layers, as
training caches it) is run over the embedded dataset; its output is pooled over positions (max, mean
and min of every channel) and a logistic regression per task is fitted on the training split. The
peer is the planted motif's own PWM (log-odds against the background composition), scanned on both
strands, best score per sequence: the best a detector of that motif alone can do (the cooperative
task gets the smaller of its two motifs' scan ranks). Columns: validation auROC of both.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caduceus_lrp.data import load_dataset  # noqa: E402
from caduceus_lrp.data.synthetic import COOPERATIVE_TASK, TASK_MOTIFS, jaspar_ppm  # noqa: E402
from caduceus_lrp.training import TrainConfig  # noqa: E402
from caduceus_lrp.training.frozen_cache import FrozenCache  # noqa: E402
from caduceus_lrp.training.loop import build_trainable  # noqa: E402


def pwm_scan(onehot: np.ndarray, ppm: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Best log-odds score of the motif on either strand: onehot (b, l, 4), ppm (w, 4) -> (b,)."""
    pwm = np.log((ppm + 1e-3) / background)
    windows = np.lib.stride_tricks.sliding_window_view(onehot, len(ppm), axis=1)  # (b, l-w+1, 4, w)
    forward = np.einsum("bpkw,wk->bp", windows, pwm)
    reverse = np.einsum("bpkw,wk->bp", windows, pwm[::-1, ::-1])
    return np.maximum(forward, reverse).max(axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrained", default=None, help="backbone folder (default: the demo one)")
    parser.add_argument("--unfreeze-layers", type=int, default=2)
    args = parser.parse_args()
    cfg = TrainConfig(pretrained=args.pretrained, unfreeze_layers=args.unfreeze_layers)
    ds = load_dataset(cfg.data)
    split, description = build_trainable(cfg, ds.task_names)
    cache = FrozenCache(split, ds.tokens, cfg.eval_batch_size, "cpu", dtype="float32")
    feats = cache.data[:, 0]                                                # (N, l, c), strand 0
    pooled = torch.cat([feats.amax(1), feats.mean(1), feats.amin(1)], 1).numpy()
    train, val = ds.split == "train", ds.split == "val"

    onehot = ds.one_hot().astype(np.float64)
    background = onehot[train].mean(axis=(0, 1))
    scans = {task: pwm_scan(onehot, jaspar_ppm(motif), background)
             for task, motif in TASK_MOTIFS.items()}
    scans[COOPERATIVE_TASK] = np.minimum(rankdata(scans["GATA1"]), rankdata(scans["TAL1"]))

    print(f"backbone: {description}; frozen: embedding + {split.n_frozen} layers; "
          f"{int(train.sum())} training, {int(val.sum())} validation sequences")
    print(f"{'task':<12}{'probe val auROC':>17}{'PWM scan val auROC':>20}")
    for t, task in enumerate(ds.task_names):
        y = ds.labels[:, t]
        probe = LogisticRegression(max_iter=3000).fit(pooled[train], y[train])
        print(f"{task:<12}{roc_auc_score(y[val], probe.decision_function(pooled[val])):>17.3f}"
              f"{roc_auc_score(y[val], scans[task][val]):>20.3f}")


if __name__ == "__main__":
    main()
