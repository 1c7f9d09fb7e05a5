"""One-hot encoding throughput: caduceus_lrp.sequence.one_hot against tangermeme.utils.one_hot_encode.

Run: python bench/onehot.py [--mbp 50] [--repeats 5]
Both run on one thread (torch and numba set to 1) on the same random sequence in one process;
the table gives the best time of each and the ratio tangermeme time / our time (>= 1: ours is
at least as fast), like for like: float32 output (ours by default) and int8 (tangermeme's default).
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from results import best_time, record  # noqa: E402

from caduceus_lrp.sequence import one_hot  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbp", type=float, default=50.0, help="sequence length in Mbp")
    parser.add_argument("--repeats", type=int, default=5, help="calls per method; the best counts")
    args = parser.parse_args()
    from tangermeme.utils import one_hot_encode

    torch.set_num_threads(1)
    n = int(args.mbp * 1e6)
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    seq = letters[rng.choice(5, size=n, p=[0.2475, 0.2475, 0.2475, 0.2475, 0.01])].tobytes().decode()
    one_hot_encode(seq[:100_000])  # numba compile / cache load
    one_hot(seq[:100_000]), one_hot(seq[:100_000], np.int8)  # numba compile / cache load
    ours_s, ours = best_time(lambda: one_hot(seq), args.repeats)
    tg32_s, tg32 = best_time(lambda: one_hot_encode(seq, dtype=torch.float32), args.repeats)
    ours8_s, ours8 = best_time(lambda: one_hot(seq, np.int8), args.repeats)
    tg8_s, tg8 = best_time(lambda: one_hot_encode(seq), args.repeats)
    if not (np.array_equal(ours[0], tg32.numpy().T) and np.array_equal(ours8[0], tg8.numpy().T)):
        sys.exit("outputs differ")
    rows = [("caduceus_lrp.sequence.one_hot", "(1, L, 4) float32", ours_s, None),
            ("tangermeme.utils.one_hot_encode, dtype=float32", "(4, L) float32", tg32_s,
             tg32_s / ours_s),
            ("caduceus_lrp.sequence.one_hot, dtype=int8", "(1, L, 4) int8", ours8_s, None),
            ("tangermeme.utils.one_hot_encode (default int8)", "(4, L) int8", tg8_s,
             tg8_s / ours8_s)]
    record("onehot", "One-hot encoding of a long sequence",
           ["method", "output", "seconds", "Mbp/s", "tangermeme time / ours"],
           [[name, out, round(seconds, 3), round(args.mbp / seconds), ratio and round(ratio, 2)]
            for name, out, seconds, ratio in rows],
           peer="tangermeme.utils.one_hot_encode on the same sequence, same run, one thread",
           notes=f"A {args.mbp:g} Mbp random sequence (1% N), best of {args.repeats} calls; the "
                 "outputs are checked equal.",
           headline=f"One-hot encoding: {tg32_s / ours_s:.1f}x the speed of tangermeme's "
                    "one_hot_encode (float32 output)")


if __name__ == "__main__":
    main()
