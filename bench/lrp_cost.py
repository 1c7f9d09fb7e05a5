"""Cost of LRP per composite as the attribute step pays it: one `explain` call over many
sequences, the background calibration of reference composites included once.

Run: python bench/lrp_cost.py [--model final_models/best_model.pt] [--sequences 192]
    [--batch-size 32] [--repeats 2] [--threads 2]
The peer is a no-grad forward pass of the same sequences in the same batches (best of
--repeats); the table gives each composite's time over it (forward passes per sequence).
"""
from __future__ import annotations

import argparse

import torch
from results import best_time, record

from caduceus_lrp import explain, load_finetuned
from caduceus_lrp.attribute import background_sequences, checkpoint_data
from caduceus_lrp.data import load_dataset
from caduceus_lrp.lrp_composites import COMPOSITES, DEFAULT_COMPOSITE, needs_references


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="final_models/best_model.pt")
    parser.add_argument("--sequences", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_finetuned(args.model)
    cfg = checkpoint_data(args.model)
    X = load_dataset(cfg).subset("test").one_hot()[:args.sequences]
    background = background_sequences(cfg)

    def forward():
        with torch.no_grad():
            for start in range(0, len(X), args.batch_size):
                model(onehot=torch.from_numpy(X[start:start + args.batch_size]))

    peer, _ = best_time(forward, args.repeats)
    rows = []
    for name in COMPOSITES:
        t, _ = best_time(lambda: explain(model, X, target=0, composite=name,
                                         batch_size=args.batch_size, background=background),
                         args.repeats)
        once = f"{len(background)} background sequences" if needs_references(name) else "–"
        rows.append([name, round(t / peer, 2), once])
    default = next(r for r in rows if r[0] == DEFAULT_COMPOSITE)
    record("lrp_cost", "LRP cost per composite over one explain call",
           ["composite", "forward passes per sequence", "calibrated once on"], rows,
           peer=f"a no-grad forward pass of the same {len(X)} sequences",
           notes=f"{args.model}, {len(X)} test sequences of {X.shape[1]} bp in batches of "
                 f"{args.batch_size}, {args.threads} threads, best of {args.repeats}.",
           headline=f"LRP with the default composite ({DEFAULT_COMPOSITE}) costs {default[1]} "
                    f"forward passes per sequence over {len(X)} sequences"
                    + (", its background calibration included"
                       if needs_references(DEFAULT_COMPOSITE) else ""))


if __name__ == "__main__":
    main()
