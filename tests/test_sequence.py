"""Sequences: tokens and one-hot against a per-letter reference, reverse complements in every form,
exact dinucleotide shuffles (uniform over all sequences with the counts), crop and pad."""
import itertools
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from caduceus_lrp.sequence import (NotOneHotError, first_invalid, fit_length, dinucleotide_shuffle,
                                   one_hot, one_hot_to_strings, one_hot_to_tokens,
                                   reverse_complement, tokens, tokens_to_one_hot)

REFERENCE_TOKEN = {"A": 7, "C": 8, "G": 9, "T": 10}
REFERENCE_ROW = {"A": [1, 0, 0, 0], "C": [0, 1, 0, 0], "G": [0, 0, 1, 0], "T": [0, 0, 0, 1]}


def random_text(rng, n, length, letters="ACGTacgtNnRYSWKMBDHV"):
    return ["".join(rng.choice(list(letters), length)) for _ in range(n)]


def test_tokens_and_one_hot_match_a_per_letter_reference():
    seqs = random_text(np.random.default_rng(0), 20, 57)
    expected_tokens = [[REFERENCE_TOKEN.get(c.upper(), 11) for c in s] for s in seqs]
    expected_rows = [[REFERENCE_ROW.get(c.upper(), [0, 0, 0, 0]) for c in s] for s in seqs]
    tok = tokens(seqs)
    assert tok.dtype == np.uint8 and tok.tolist() == expected_tokens
    x = one_hot(seqs)
    assert x.dtype == np.float32 and x.shape == (20, 57, 4)
    np.testing.assert_array_equal(x, np.array(expected_rows, dtype=np.float32))
    np.testing.assert_array_equal(one_hot(tok), x)
    np.testing.assert_array_equal(one_hot(tok.astype(np.int64)), x)


def test_a_single_string_is_one_sequence_and_other_bytes_are_n():
    assert tokens("AC-.?é1").tolist() == [[7, 8, 11, 11, 11, 11, 11]]
    assert one_hot("GT").shape == (1, 2, 4)
    assert tokens([]).shape == (0, 0)


def test_unequal_lengths_and_non_nucleotide_tokens_are_refused():
    with pytest.raises(ValueError, match="different lengths \\(2 to 3\\).*fit_length"):
        one_hot(["AC", "ACG"])
    with pytest.raises(ValueError, match="token 4 is not a nucleotide token"):
        tokens_to_one_hot(np.array([[7, 4]], dtype=np.uint8))


def test_one_hot_back_to_tokens_and_strings():
    seqs = random_text(np.random.default_rng(1), 5, 30)
    x = one_hot(seqs)
    np.testing.assert_array_equal(one_hot_to_tokens(x), tokens(seqs))
    assert one_hot_to_strings(x) == ["".join(c if c in "ACGT" else "N" for c in s.upper()) for s in seqs]
    quarter = np.full((1, 2, 4), 0.25)
    quarter[0, 1] = [0, 0, 1, 0]
    assert one_hot_to_strings(quarter) == ["NG"]
    bad = np.zeros((2, 3, 4))
    bad[1, 2] = [1, 1, 0, 0]
    with pytest.raises(NotOneHotError, match="sequence 1, position 2") as err:
        one_hot_to_tokens(bad)
    assert (err.value.sequence, err.value.position) == (1, 2)
    with pytest.raises(ValueError, match="expected a one-hot array"):
        one_hot_to_tokens(np.zeros((3, 4)))


def test_reverse_complement_of_strings_tokens_and_one_hot_agree():
    assert reverse_complement("AcgTRYKMBDHVSWN") == "NWSBDHVKMRYAcgT"
    seqs = random_text(np.random.default_rng(2), 6, 41)
    assert [reverse_complement(reverse_complement(s)) for s in seqs] == seqs
    rc = [reverse_complement(s) for s in seqs]
    np.testing.assert_array_equal(reverse_complement(tokens(seqs)), tokens(rc))
    x = reverse_complement(one_hot(seqs))
    assert x.flags.c_contiguous and x.dtype == np.float32
    np.testing.assert_array_equal(x, one_hot(rc))
    tok64 = tokens(seqs).astype(np.int64)
    assert reverse_complement(tok64).dtype == np.int64
    np.testing.assert_array_equal(reverse_complement(tokens(seqs[0])[0]), tokens(rc[0])[0])


def dinucleotides(seq):
    return Counter(zip(seq, seq[1:]))


def test_dinucleotide_shuffle_keeps_counts_ends_and_kind():
    rng = np.random.default_rng(3)
    for seq in random_text(rng, 30, 200, "ACGTN") + ["AAAAAAAAAAAC", "ACGT" * 20, "AC", "A", ""]:
        shuffled = dinucleotide_shuffle(seq, rng)
        assert isinstance(shuffled, str) and dinucleotides(shuffled) == dinucleotides(seq)
        assert shuffled[:1] == seq[:1] and shuffled[-1:] == seq[-1:]
    tok = tokens(random_text(rng, 1, 100, "ACGT")[0])[0]
    out = dinucleotide_shuffle(tok, 7)
    assert out.dtype == tok.dtype and dinucleotides(out.tolist()) == dinucleotides(tok.tolist())
    np.testing.assert_array_equal(out, dinucleotide_shuffle(tok, 7))
    assert not np.array_equal(out, tok)


def test_dinucleotide_shuffle_is_uniform_over_all_sequences_with_the_counts():
    seq = "AACGCAGCCGA"
    counts = dinucleotides(seq)
    candidates = ["".join(p) for p in itertools.product("ACG", repeat=len(seq))]
    allowed = sorted(s for s in candidates if s[0] == seq[0] and dinucleotides(s) == counts)
    assert len(allowed) > 10
    rng = np.random.default_rng(4)
    draws = Counter(dinucleotide_shuffle(seq, rng) for _ in range(200 * len(allowed)))
    assert set(draws) == set(allowed)
    assert chisquare([draws[s] for s in allowed]).pvalue > 1e-4


def test_fit_length_crops_the_centre_and_pads_with_n():
    assert fit_length("ABCDEFG", 3) == "CDE"
    assert fit_length("ABCDEF", 3) == "BCD"
    assert fit_length("AC", 5) == "NACNN"
    assert fit_length("ACG", 3) == "ACG"
    tok = tokens(["ACGTAC", "GGGTTT"])
    np.testing.assert_array_equal(fit_length(tok, 3), tokens(["CGT", "GGT"]))
    np.testing.assert_array_equal(fit_length(tok, 9), tokens(["NACGTACNN", "NGGGTTTNN"]))
    with pytest.raises(ValueError, match="length must be positive"):
        fit_length("ACG", 0)


def test_first_invalid_finds_non_iupac_characters():
    assert first_invalid("ACGTNRYacgtnry") is None
    assert first_invalid("ACGT-A") == 4
    assert first_invalid("ACGU") == 3


def test_fast_one_hot_equals_reference_for_long_inputs():
    """The compiled gather (used from 65,536 positions on) against np.take, float32 and int8."""
    from caduceus_lrp.sequence import _BYTE_ONE_HOT, _TOKEN_ONE_HOT, _as_bytes, _gather_rows_ref, tokens

    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGTNacgtRY"), size=40_000)) for _ in range(3)]
    for dtype in (np.float32, np.int8, np.float64):
        ref = _gather_rows_ref(_BYTE_ONE_HOT.astype(dtype), _as_bytes(seqs))
        fast = one_hot(seqs, dtype)
        assert fast.dtype == dtype and fast.shape == (3, 40_000, 4)
        assert np.array_equal(fast, ref)
        assert np.array_equal(one_hot(tokens(seqs), dtype), _gather_rows_ref(_TOKEN_ONE_HOT.astype(dtype), tokens(seqs)))
