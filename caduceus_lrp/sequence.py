"""The DNA alphabet of the whole package: strings, Caduceus tokens and one-hot arrays; the reverse
complement in every form, dinucleotide shuffles, fixed length.

Glossary: b batch (sequences), l length. Tokens follow Caduceus's character tokenizer:
A=7, C=8, G=9, T=10, N=11 ([MASK] = 3). Text is upper-cased first, then every byte that is not
A, C, G or T becomes N. One-hot arrays are (b, l, 4) over A, C, G, T (`BASES`); N is the
all-zero row. Because the complement of A, C, G, T is T, G, C, A, the reverse complement of a
one-hot array is the array with its length and base axes flipped (`flip_lc`).
"""
from __future__ import annotations

import re
import zlib

import numpy as np

__all__ = ["BASES", "TOKEN_IDS", "BASE_TOKENS", "N_TOKEN", "MASK_TOKEN", "IUPAC", "flip_lc", "NotOneHotError", "tokens", "one_hot", "tokens_to_one_hot",
           "one_hot_to_tokens", "one_hot_to_strings", "reverse_complement",
           "dinucleotide_shuffle", "shuffled_one_hot", "fit_length", "first_invalid"]

BASES = "ACGT"  # the order of one-hot columns, PPM columns and logo letters everywhere
TOKEN_IDS = {"A": 7, "C": 8, "G": 9, "T": 10, "N": 11}
BASE_TOKENS = tuple(TOKEN_IDS[b] for b in BASES)  # (7, 8, 9, 10): the token of each one-hot column
N_TOKEN = TOKEN_IDS["N"]
MASK_TOKEN = 3  # [MASK] of the Caduceus tokenizer
IUPAC = "ACGTRYSWKMBDHVN"  # the nucleotide codes a sequence may hold (either case); all but ACGT read as N

_BYTE_TOKEN = np.full(256, N_TOKEN, dtype=np.uint8)  # byte -> token
for _base, _token in TOKEN_IDS.items():
    _BYTE_TOKEN[ord(_base)] = _BYTE_TOKEN[ord(_base.lower())] = _token
_TOKEN_ONE_HOT = np.zeros((256, 4), dtype=np.float32)  # token -> one-hot row
for _i, _base in enumerate(BASES):
    _TOKEN_ONE_HOT[TOKEN_IDS[_base], _i] = 1.0
_BYTE_ONE_HOT = _TOKEN_ONE_HOT[_BYTE_TOKEN]  # byte -> one-hot row: the 256-entry table one_hot uses
_TOKEN_LETTER = np.full(256, ord("N"), dtype=np.uint8)  # token -> byte
for _base, _token in TOKEN_IDS.items():
    _TOKEN_LETTER[_token] = ord(_base)
_TOKEN_COMPLEMENT = np.arange(256, dtype=np.uint8)
_TOKEN_COMPLEMENT[list(BASE_TOKENS)] = BASE_TOKENS[::-1]
_COMPLEMENT = str.maketrans("ACGTRYSWKMBDHVNacgtryswkmbdhvn", "TGCAYRSWMKVHDBNtgcayrswmkvhdbn")
_NON_IUPAC = re.compile(f"[^{IUPAC}{IUPAC.lower()}]")


class NotOneHotError(ValueError):
    """A row of an array given as one-hot is neither a base nor N; `sequence`, `position` locate it."""

    def __init__(self, sequence, position, row):
        super().__init__(f"sequence {sequence}, position {position}: {row} is not one-hot "
                         "(a single 1, or all values equal for N)")
        self.sequence, self.position = sequence, position


def first_invalid(seq):
    """Index of the first character of `seq` that is not an IUPAC nucleotide code, or None."""
    match = _NON_IUPAC.search(seq)
    return None if match is None else match.start()


def _as_bytes(seqs):
    """A str or a list of equal-length str -> (b, l) uint8 of their bytes (non-ASCII -> '?')."""
    if isinstance(seqs, str):
        return np.frombuffer(seqs.encode("ascii", "replace"), dtype=np.uint8).reshape(1, -1)
    lengths = {len(s) for s in seqs}
    if len(lengths) > 1:
        raise ValueError(f"sequences have different lengths ({min(lengths)} to {max(lengths)}); "
                         "make them equal with fit_length")
    length = lengths.pop() if lengths else 0
    data = "".join(seqs).encode("ascii", "replace")
    return np.frombuffer(data, dtype=np.uint8).reshape(len(seqs), length)


def tokens(seqs):
    """Caduceus tokens of a str or a list of equal-length str: (b, l) uint8 (a str gives b = 1)."""
    return np.take(_BYTE_TOKEN, _as_bytes(seqs))


def _check_tokens(tok):
    tok = np.asarray(tok)
    if not np.issubdtype(tok.dtype, np.integer):
        raise TypeError(f"tokens must be an integer array, got {tok.dtype}")
    if tok.size and (tok.min() < TOKEN_IDS["A"] or tok.max() > N_TOKEN):
        bad = tok[(tok < TOKEN_IDS["A"]) | (tok > N_TOKEN)].flat[0]
        raise ValueError(f"token {bad} is not a nucleotide token (7-11: A, C, G, T, N)")
    return tok


_FAST_GATHER_MIN = 1 << 16  # below this many positions np.take is as fast as the kernel


def _gather_rows_ref(table, codes):
    """table (256, 4), codes (b, l) uint8 -> table[codes] (b, l, 4): the reference gather."""
    return np.take(table, codes, axis=0)


def _gather_rows(table, codes):
    """table[codes] like `_gather_rows_ref`, fast for long inputs: each 4-entry row is moved as
    one or a few machine words by a compiled loop (numba, cached on disk), with no (b, l) index
    array of intp."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    row_bytes = table.dtype.itemsize * 4
    if codes.size < _FAST_GATHER_MIN or row_bytes % 4:
        return _gather_rows_ref(table, codes)
    word = np.uint32 if row_bytes == 4 else np.uint64
    words = np.ascontiguousarray(table).view(word)                     # (256, k)
    out = np.empty(codes.size * words.shape[1], dtype=word)
    _gather_kernel()(codes.reshape(-1), words.reshape(-1), words.shape[1], out)
    return out.view(table.dtype).reshape(*codes.shape, 4)


def _gather_kernel():
    global _GATHER
    if _GATHER is None:
        import numba

        @numba.njit(cache=True, nogil=True)
        def gather(codes, words, k, out):  # out[i*k + j] = words[codes[i]*k + j]
            if k == 1:
                for i in range(codes.shape[0]):
                    out[i] = words[codes[i]]
                return
            for i in range(codes.shape[0]):
                c = codes[i] * k
                for j in range(k):
                    out[i * k + j] = words[c + j]

        _GATHER = gather
    return _GATHER


_GATHER = None


def tokens_to_one_hot(tok, dtype=np.float32):
    """Tokens (b, l) -> one-hot (b, l, 4) over A, C, G, T (float32 by default); N is all zeros."""
    return _gather_rows(_TOKEN_ONE_HOT.astype(dtype, copy=False), _check_tokens(tok).astype(np.uint8))


def one_hot(seqs, dtype=np.float32):
    """One-hot (b, l, 4) of a str, a list of equal-length str, or a token array (b, l);
    float32 by default, any numpy dtype (e.g. np.int8 for a compact copy).

    Strings go through one 256-entry table indexed by their bytes: A/a, C/c, G/g, T/t set one
    column, every other byte (N, IUPAC codes) gives the all-zero row.
    """
    if isinstance(seqs, np.ndarray) and np.issubdtype(seqs.dtype, np.integer):
        return tokens_to_one_hot(seqs, dtype)
    return _gather_rows(_BYTE_ONE_HOT.astype(dtype, copy=False), _as_bytes(seqs))


def one_hot_to_tokens(x):
    """One-hot (b, l, 4) -> tokens (b, l) uint8.

    A row with a single 1 and zeros is its base; a row of equal values (all 0, or all 0.25 as some
    datasets write N) is N; any other row raises NotOneHotError naming its position.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[-1] != 4:
        raise ValueError(f"expected a one-hot array (b, l, 4), got shape {x.shape}")
    high, low = x.max(axis=-1), x.min(axis=-1)
    is_base = (high == 1) & (low == 0) & (x.sum(axis=-1) == 1)
    is_n = high == low
    bad = ~(is_base | is_n)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise NotOneHotError(int(i), int(j), x[i, j].tolist())
    return np.where(is_base, x.argmax(axis=-1) + TOKEN_IDS["A"], N_TOKEN).astype(np.uint8)


def one_hot_to_strings(x):
    """One-hot (b, l, 4) -> list of b str over A, C, G, T, N (rules of one_hot_to_tokens)."""
    letters = _TOKEN_LETTER[one_hot_to_tokens(x)]
    return [row.tobytes().decode("ascii") for row in letters]


def flip_lc(x):
    """The length and channel axes of (..., l, c) flipped, for a numpy array or a torch tensor.

    For one-hot (..., l, 4) over A, C, G, T this is the reverse complement. For the hidden
    states of an RC-equivariant (ps) Caduceus, whose second half of channels is the reverse
    strand in reversed channel order, it maps one strand's half onto the other's.
    """
    if hasattr(x, "flip"):  # a torch tensor
        return x.flip(dims=(-2, -1))
    return np.asarray(x)[..., ::-1, ::-1]


def reverse_complement(x):
    """Reverse complement of a str (IUPAC codes, case kept), a token array (..., l) or a one-hot
    array (b, l, 4); arrays come back as new contiguous arrays of the same dtype."""
    if isinstance(x, str):
        return x.translate(_COMPLEMENT)[::-1]
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[-1] == 4:
        return np.ascontiguousarray(flip_lc(x))
    return np.take(_TOKEN_COMPLEMENT, _check_tokens(x)[..., ::-1]).astype(x.dtype)


def dinucleotide_shuffle(seq, rng):
    """A uniformly random sequence with exactly the dinucleotide counts of `seq`.

    `seq`: an ASCII str or a 1-D integer array (tokens); returns the same kind. `rng`: a
    numpy Generator or a seed. The first and last letters are kept (every sequence with these
    counts shares them). Altschul & Erickson (1985): a random spanning tree of last exits
    (drawn edge by edge and rejected unless it is a tree), the other exits shuffled, then the
    Eulerian walk.
    """
    rng = np.random.default_rng(rng)
    is_str = isinstance(seq, str)
    codes = np.frombuffer(seq.encode("ascii"), dtype=np.uint8) if is_str else np.asarray(seq)
    if codes.ndim != 1:
        raise ValueError(f"expected one sequence (a str or a 1-D array), got shape {codes.shape}")
    if len(codes) < 3:
        return seq if is_str else codes.copy()
    first, last = codes[0].item(), codes[-1].item()
    exits = {}  # letter -> list of the letters that follow it
    for a, b in zip(codes[:-1].tolist(), codes[1:].tolist()):
        exits.setdefault(a, []).append(b)
    while True:
        last_exit = {a: int(rng.integers(len(following))) for a, following in exits.items() if a != last}
        if _is_tree({a: exits[a][i] for a, i in last_exit.items()}, last):
            break
    order = {}
    for a, following in exits.items():
        rest = following.copy()
        final = rest.pop(last_exit[a]) if a != last else None
        rest = [rest[i] for i in rng.permutation(len(rest))]
        order[a] = rest + ([final] if final is not None else [])
    out = [first]
    used = dict.fromkeys(order, 0)
    for _ in range(len(codes) - 1):
        a = out[-1]
        out.append(order[a][used[a]])
        used[a] += 1
    result = np.array(out, dtype=codes.dtype)
    return result.tobytes().decode("ascii") if is_str else result


def shuffled_one_hot(x, seed: int = 0) -> np.ndarray:
    """Each one-hot sequence of x (b, l, 4) dinucleotide-shuffled, in x's dtype. A sequence's
    shuffle is seeded by `seed` and the sequence itself, so it does not depend on the batch."""
    tokens = one_hot_to_tokens(x)
    shuffled = np.stack([dinucleotide_shuffle(row, np.random.default_rng(
        [seed, zlib.crc32(row.tobytes())])) for row in tokens])
    return tokens_to_one_hot(shuffled, dtype=np.asarray(x).dtype)


def _is_tree(parent, root):
    """Whether following `parent` (letter -> next letter) from every letter reaches `root`."""
    for start in parent:
        a, steps = start, 0
        while a != root:
            a, steps = parent[a], steps + 1
            if steps > len(parent):
                return False
    return True


def fit_length(seq, length):
    """Centre-crop or N-pad `seq` to `length`: a str, or a token array (..., l) padded with N.

    Cropping keeps seq[s : s + length] with s = (l - length) // 2; padding puts
    (length - l) // 2 N on the left and the rest on the right.
    """
    if length < 1:
        raise ValueError(f"length must be positive, got {length}")
    n = len(seq) if isinstance(seq, str) else np.shape(seq)[-1]
    if n >= length:
        start = (n - length) // 2
        return seq[start:start + length] if isinstance(seq, str) else seq[..., start:start + length]
    left = (length - n) // 2
    right = length - n - left
    if isinstance(seq, str):
        return "N" * left + seq + "N" * right
    widths = [(0, 0)] * (np.ndim(seq) - 1) + [(left, right)]
    return np.pad(seq, widths, constant_values=N_TOKEN)
