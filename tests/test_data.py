"""Data: each input format read into the same container, splits, peak windows and GC-matched
negatives, caching, the embedded dataset, ground-truth files, and bad inputs (load_dataset and the
`data` command)."""
import gzip
import logging
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io

from caduceus_lrp.cli import add_arguments, from_args
from caduceus_lrp.commands import main as command
from caduceus_lrp.data import (DataConfig, SequenceDataset, embedded_dataset, load_dataset,
                               read_ground_truth, synthetic)
from caduceus_lrp.data.ground_truth import read_sites
from caduceus_lrp.errors import InputError
from caduceus_lrp.sequence import one_hot, tokens


def load(tmp_path, data, **kw):
    return load_dataset(DataConfig(data=data, cache_dir=str(tmp_path / "cache"), **kw))


def write(path, text):
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- tables

TABLE = ("id\tsequence\tbound\tsignal\tsplit\n"
         "a\tACGTACGTAC\t1\t0.5\ttrain\n"
         "\n"
         "b\tacgn\t0\t-2\tvalid\n"
         "c\tGGGGCCCCAATT\t1\t3\ttest\n")


def test_table_rows_labels_split_and_fit(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    ds = load(tmp_path, write(tmp_path / "t.tsv", TABLE), seq_len=8)
    assert ds.ids == ["a", "b", "c"] and ds.task_names == ["bound", "signal"]
    np.testing.assert_array_equal(ds.labels, [[1, 0.5], [0, -2], [1, 3]])
    assert ds.split.tolist() == ["train", "val", "test"]
    assert ds.tokens.tolist() == tokens(["CGTACGTA", "NNACGNNN", "GGCCCCAA"]).tolist()
    assert "2 sequences centre-cropped and 1 N-padded to 8 bp" in caplog.text
    assert ds.coords is None and ds.seq_len == 8 and len(ds) == 3


def test_gzipped_csv_with_chosen_columns_and_coordinates(tmp_path):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("sequence,chrom,start,end,name,y\nACGT,chr1,10,14,x,1\nTTTT,chr2,0,4,y,0\n")
    ds = load(tmp_path, str(path), seq_len=4, label_columns=["y"])
    assert ds.task_names == ["y"] and ds.ids == ["line2", "line3"]
    assert ds.coords == [("chr1", 10, 14), ("chr2", 0, 4)]


def test_rows_without_a_split_are_drawn_by_seed(tmp_path):
    rows = "".join(f"s{i},ACGT,{i % 2}\n" for i in range(200))
    path = write(tmp_path / "t.csv", "id,sequence,y\n" + rows)
    ds = load(tmp_path, path, seq_len=4, val_fraction=0.2, test_fraction=0.1)
    assert [int(np.sum(ds.split == s)) for s in ("train", "val", "test")] == [140, 40, 20]
    again = load(tmp_path, path, seq_len=4, val_fraction=0.2, test_fraction=0.1)
    other = load(tmp_path, path, seq_len=4, val_fraction=0.2, test_fraction=0.1, seed=1)
    assert ds.split.tolist() == again.split.tolist() != other.split.tolist()


def test_validation_rows_are_drawn_from_train_when_there_are_none(tmp_path):
    rows = "".join(f"s{i},ACGT,1,{'test' if i < 20 else 'train'}\n" for i in range(100))
    ds = load(tmp_path, write(tmp_path / "t.csv", "id,sequence,y,split\n" + rows), seq_len=4)
    assert [int(np.sum(ds.split == s)) for s in ("train", "val", "test")] == [70, 10, 20]
    assert set(ds.subset("test").ids) == {f"s{i}" for i in range(20)}


@pytest.mark.parametrize("text, message", [
    ("", "t.tsv: empty file"),
    ("id\tsequence\ty\n", "t.tsv: no rows below the header"),
    ("id\tseq\ty\na\tACGT\t1\n", "t.tsv: line 1: no 'sequence' column \\(columns: id, seq, y\\)"),
    ("id\tsequence\ty\na\tACGT\t1\nb\tACGT\tyes\n", "t.tsv: line 3: label 'y' is not a number: 'yes'"),
    ("id\tsequence\ty\na\tACGT\t\n", "t.tsv: line 2: missing label 'y'"),
    ("id\tsequence\tsplit\na\tACGT\ttrain\n", "t.tsv: line 1: no label columns"),
    ("id\tsequence\ty\tsplit\na\tACGT\t1\ttrain\nb\tACGT\t0\tholdout\n",
     "t.tsv: line 3: unknown split 'holdout' \\(expected train, val or test\\)"),
    ("id\tsequence\ty\na\tACGT\t1\n\nb\tACGT\t1\na\tACGT\t0\n",
     "t.tsv: line 5: duplicate id 'a' \\(first on line 2\\)"),
    ("id\tsequence\ty\na\tACGT\t1\nb\tAC-GT\t1\n",
     "t.tsv: line 3: invalid character '-' at position 3 of the sequence"),
    ("id\tsequence\ty\na\t\t1\n", "t.tsv: line 2: empty sequence"),
])
def test_bad_tables(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        load(tmp_path, write(tmp_path / "t.tsv", text))


def test_unknown_label_column_and_format(tmp_path):
    with pytest.raises(InputError, match="line 1: label column 'z' not found"):
        load(tmp_path, write(tmp_path / "t.tsv", TABLE), label_columns=["z"])
    with pytest.raises(InputError, match="x.xlsx: unknown format"):
        load(tmp_path, write(tmp_path / "x.xlsx", "x"))
    with pytest.raises(InputError, match="missing.tsv: file not found"):
        load(tmp_path, str(tmp_path / "missing.tsv"))


# ---------------------------------------------------------------- FASTA

FASTA = ">r1 first record\nACGT\nACGT\n\n>r2\nGGGGCCCC\n"


def test_fasta_with_labels_keyed_by_id(tmp_path):
    labels = write(tmp_path / "l.csv", "id,t1,t2,split\nr2,1,0,val\nr1,0,1,train\n")
    path = tmp_path / "s.fa.gz"
    with gzip.open(path, "wt") as f:
        f.write(FASTA)
    ds = load(tmp_path, str(path), labels=labels, seq_len=8)
    assert ds.ids == ["r1", "r2"] and ds.split.tolist() == ["train", "val"]
    np.testing.assert_array_equal(ds.labels, [[0, 1], [1, 0]])
    assert ds.tokens.tolist() == tokens(["ACGTACGT", "GGGGCCCC"]).tolist()


@pytest.mark.parametrize("fasta, labels, message", [
    (FASTA + ">r3\nACGT\n", "id,y\nr1,1\nr2,0\n", "s.fa: line 7: record 'r3' has no labels in .*l.csv"),
    (FASTA, "id,y\nr1,1\nr2,0\nr9,1\n", "l.csv: line 4: id 'r9' has no sequence in .*s.fa"),
    (FASTA + ">r1\nAC\n", "id,y\nr1,1\nr2,0\n", "s.fa: line 7: duplicate id 'r1' \\(first on line 1\\)"),
    ("ACGT\n" + FASTA, "id,y\nr1,1\n", "s.fa: line 1: sequence before the first '>' header"),
    ("", "id,y\nr1,1\n", "s.fa: empty file"),
    (FASTA, "id,y\nr1,1\nr2,x\n", "l.csv: line 3: label 'y' is not a number"),
])
def test_bad_fasta_inputs(tmp_path, fasta, labels, message):
    with pytest.raises(InputError, match=message):
        load(tmp_path, write(tmp_path / "s.fa", fasta), labels=write(tmp_path / "l.csv", labels))


def test_options_must_match_the_format(tmp_path):
    fasta = write(tmp_path / "s.fa", FASTA)
    with pytest.raises(InputError, match="--labels: FASTA input needs a label table"):
        load(tmp_path, fasta)
    with pytest.raises(InputError, match="--genome: a genome goes with peak input, not table"):
        load(tmp_path, write(tmp_path / "t.tsv", TABLE), genome="g.fa")


# ---------------------------------------------------------------- peaks

def make_genome(tmp_path, seed=0, length=20_000):
    """A genome FASTA of chr1, chr8, chr9 (random, 60 bp lines); chr1 holds a run of N."""
    rng = np.random.default_rng(seed)
    seqs = {c: "".join(rng.choice(list("ACGT"), length, p=[0.3, 0.2, 0.2, 0.3])) for c in ("chr1", "chr8", "chr9")}
    seqs["chr1"] = seqs["chr1"][:12_000] + "N" * 4_000 + seqs["chr1"][16_000:]
    path = tmp_path / "genome.fa"
    path.write_text("".join(f">{c} test\n" + "\n".join(s[i:i + 60] for i in range(0, length, 60)) + "\n"
                            for c, s in seqs.items()))
    return path, seqs


def make_peaks(tmp_path):
    folder = tmp_path / "peaks"
    folder.mkdir()
    (folder / "CTCF.narrowPeak").write_text(
        "chr1\t1000\t1300\tp1\t0\t.\t5\t1\t1\t50\n"     # summit 1050
        "chr8\t5000\t5100\tp2\t0\t.\t5\t1\t1\t-1\n"     # no summit: centre 5050
        "chrX\t100\t200\tp3\t0\t.\t5\t1\t1\t10\n"       # chromosome missing from the genome
        "chr9\t19950\t20100\tp4\t0\t.\t5\t1\t1\t10\n")  # past the end of chr9
    (folder / "GATA1.bed").write_text("track name=gata\n#comment\nchr1\t1100\t1200\nchr9\t3000\t3300\n")
    return folder


def test_peak_windows_labels_negatives_and_split(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    genome, seqs = make_genome(tmp_path)
    ds = load(tmp_path, str(make_peaks(tmp_path)), genome=str(genome), seq_len=100, negatives_per_positive=5)
    assert ds.task_names == ["CTCF", "GATA1"]
    positives = {("chr1", 1000, 1100): [1, 0], ("chr1", 1100, 1200): [1, 1],
                 ("chr8", 5000, 5100): [1, 0], ("chr9", 3100, 3200): [0, 1]}
    rows = {c: i for i, c in enumerate(ds.coords)}
    assert set(positives) <= set(rows)
    for coord, label in positives.items():
        assert ds.labels[rows[coord]].tolist() == label
        assert ds.ids[rows[coord]] == f"{coord[0]}:{coord[1]}-{coord[2]}"
    for (c, s, e), tok in zip(ds.coords, ds.tokens):
        assert tok.tolist() == tokens(seqs[c][s:e])[0].tolist()
    split = dict(zip((c for c, _, _ in ds.coords), ds.split))
    assert split == {"chr1": "train", "chr8": "val", "chr9": "test"}
    negatives = [c for c in ds.coords if c not in positives]
    assert len(negatives) == 20 and not ds.labels[[rows[c] for c in negatives]].any()
    peaks = [("chr1", 1000, 1300), ("chr8", 5000, 5100), ("chr1", 1100, 1200), ("chr9", 3000, 3300)]
    for c, s, e in negatives:
        assert not any(c == pc and s < pe and ps < e for pc, ps, pe in peaks)
        assert seqs[c][s:e].count("N") <= 10
    gc = lambda c, s, e: int(20 * sum(seqs[c][s:e].count(b) for b in "GC") / (e - s))  # noqa: E731
    for chrom in ("chr1", "chr8", "chr9"):
        pos_bins = sorted(gc(*c) for c in positives if c[0] == chrom)
        neg_bins = sorted(gc(*c) for c in negatives if c[0] == chrom)
        assert neg_bins == sorted(pos_bins * 5)
    assert "CTCF.narrowPeak: skipped 1 intervals on chromosomes missing from the genome, 1 past" in caplog.text
    assert (tmp_path / "genome.fa.fai").exists()


def test_peak_dataset_is_cached(tmp_path, monkeypatch):
    genome, _ = make_genome(tmp_path)
    peaks = make_peaks(tmp_path)
    first = load(tmp_path, [str(p) for p in sorted(peaks.iterdir())], genome=str(genome), seq_len=100)
    import caduceus_lrp.data.peaks as peaks_module

    monkeypatch.setattr(peaks_module, "_peak_windows", lambda *a: pytest.fail("rebuilt the cached dataset"))
    second = load(tmp_path, [str(p) for p in sorted(peaks.iterdir())], genome=str(genome), seq_len=100)
    np.testing.assert_array_equal(first.tokens, second.tokens)
    assert (first.ids, first.coords, first.split.tolist()) == (second.ids, second.coords, second.split.tolist())
    with pytest.raises(pytest.fail.Exception, match="rebuilt"):  # another length: another key
        load(tmp_path, [str(p) for p in sorted(peaks.iterdir())], genome=str(genome), seq_len=101)


def test_bad_peak_inputs(tmp_path):
    genome, _ = make_genome(tmp_path)
    lost = write(tmp_path / "lost.bed", "chrX\t1\t100\nchr1\t19990\t20010\nchrY\t5\t9\n")
    with pytest.raises(InputError, match="lost.bed: no usable intervals \\(2 on chromosomes missing "
                                         "from the genome, 1 past a chromosome end\\)"):
        load(tmp_path, lost, genome=str(genome))
    with pytest.raises(InputError, match="nope.fa: genome FASTA not found"):
        load(tmp_path, lost, genome=str(tmp_path / "nope.fa"))
    with pytest.raises(InputError, match="--genome: peak input needs a genome FASTA"):
        load(tmp_path, lost)
    with pytest.raises(InputError, match="x.bed: line 2: end 5 is not after start 9"):
        load(tmp_path, write(tmp_path / "x.bed", "chr1\t1\t100\nchr1\t9\t5\n"), genome=str(genome))
    with pytest.raises(InputError, match="y.narrowPeak: line 1: narrowPeak needs an integer summit"):
        load(tmp_path, write(tmp_path / "y.narrowPeak", "chr1\t1\t100\n"), genome=str(genome))
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- HDF5

def random_one_hot(rng, n, length):
    return one_hot(["".join(rng.choice(list("ACGTN"), length)) for _ in range(n)])


def test_hdf5_x_y_layout_with_names_split_and_ids(tmp_path):
    rng = np.random.default_rng(0)
    x, y = random_one_hot(rng, 6, 12), rng.integers(0, 2, (6, 3)).astype(np.float32)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"], f["y"] = x, y
        f["task_names"] = ["a", "b", "c"]
        f["split"] = ["train", "train", "val", "test", "train", "valid"]
        f["ids"] = [f"q{i}" for i in range(6)]
    ds = load(tmp_path, str(tmp_path / "d.h5"), seq_len=12, label_columns=["c", "a"])
    np.testing.assert_array_equal(ds.one_hot(), x)
    np.testing.assert_array_equal(ds.labels, y[:, [2, 0]])
    assert ds.task_names == ["c", "a"] and ds.ids == [f"q{i}" for i in range(6)]
    assert ds.split.tolist() == ["train", "train", "val", "test", "train", "val"]


def test_deepsea_mat_files_v73_and_v5(tmp_path):
    rng = np.random.default_rng(1)
    xt, yt = random_one_hot(rng, 7, 20), rng.integers(0, 2, (7, 4))
    xv, yv = random_one_hot(rng, 3, 20), rng.integers(0, 2, (3, 4))
    with h5py.File(tmp_path / "train.mat", "w") as f:  # MATLAB v7.3 as h5py sees it: (l, 4, b), (t, b)
        f["trainxdata"] = xt.transpose(1, 2, 0).astype(np.uint8)
        f["traindata"] = yt.T.astype(np.uint8)
    scipy.io.savemat(tmp_path / "valid.mat", {"validxdata": xv.transpose(0, 2, 1).astype(np.uint8),
                                              "validdata": yv.astype(np.uint8)})  # v5: (b, 4, l), (b, t)
    ds = load(tmp_path, str(tmp_path), seq_len=16)
    np.testing.assert_array_equal(ds.one_hot(), np.concatenate([xt, xv])[:, 2:18])
    np.testing.assert_array_equal(ds.labels, np.concatenate([yt, yv]))
    assert ds.split.tolist() == ["train"] * 7 + ["val"] * 3
    assert ds.task_names == ["task_0", "task_1", "task_2", "task_3"] and ds.ids[7] == "valid.mat:0"


def test_basset_layout(tmp_path):
    rng = np.random.default_rng(2)
    x, y = random_one_hot(rng, 8, 10), rng.integers(0, 2, (8, 2)).astype(np.uint8)
    with h5py.File(tmp_path / "b.h5", "w") as f:  # no valid_in: validation is drawn from train
        f["train_in"], f["test_in"] = (x[s].transpose(0, 2, 1)[:, :, None, :] for s in (slice(6), slice(6, 8)))
        f["train_out"], f["test_out"] = y[:6], y[6:]
        f["target_labels"] = [b"DNase", b"H3K27ac"]
    ds = load(tmp_path, str(tmp_path / "b.h5"), seq_len=10, val_fraction=0.25)
    np.testing.assert_array_equal(ds.one_hot(), x)
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.task_names == ["DNase", "H3K27ac"]
    assert sorted(ds.split[:6].tolist()) == ["train"] * 4 + ["val"] * 2
    assert ds.split[6:].tolist() == ["test", "test"]


def test_bad_hdf5_inputs(tmp_path):
    rng = np.random.default_rng(3)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["seqs"], f["labels"] = random_one_hot(rng, 3, 5), np.zeros((3, 1))
    with pytest.raises(InputError, match="a.h5: no known datasets: .* found labels, seqs"):
        load(tmp_path, str(tmp_path / "a.h5"))
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f["x"], f["y"] = random_one_hot(rng, 3, 5), np.zeros((4, 1))
    with pytest.raises(InputError, match="b.h5: 'x' has 3 sequences but 'y' has 4"):
        load(tmp_path, str(tmp_path / "b.h5"))
    with h5py.File(tmp_path / "c.h5", "w") as f:
        x = random_one_hot(rng, 3, 5)
        x[2, 4] = [0.5, 0.5, 0, 0]
        f["x"], f["y"] = x, np.zeros((3, 1))
    with pytest.raises(InputError, match="c.h5: 'x': sequence 2, position 4 is not one-hot"):
        load(tmp_path, str(tmp_path / "c.h5"))
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"], f["y"] = np.zeros((3, 5, 5)), np.zeros((3, 1))
    with pytest.raises(InputError, match="d.h5: 'x' has shape \\(3, 5, 5\\), expected \\(b, l, d\\)"):
        load(tmp_path, str(tmp_path / "d.h5"))
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f["trainxdata"] = np.zeros((5, 4, 3))
    with pytest.raises(InputError, match="e.h5: dataset 'traindata' is missing"):
        load(tmp_path, str(tmp_path / "e.h5"))
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f["x"], f["y"], f["split"] = random_one_hot(rng, 3, 5), np.zeros((3, 1)), ["train", "val"]
    with pytest.raises(InputError, match="g.h5: 'split' and 'ids' need one entry per sequence of 'x' \\(3\\)"):
        load(tmp_path, str(tmp_path / "g.h5"))
    for name, n_tasks in (("h.h5", 1), ("i.h5", 2)):
        with h5py.File(tmp_path / name, "w") as f:
            f["x"], f["y"] = random_one_hot(rng, 3, 5), np.zeros((3, n_tasks))
    with pytest.raises(InputError, match="i.h5: its tasks differ from those of .*h.h5"):
        load(tmp_path, [str(tmp_path / "h.h5"), str(tmp_path / "i.h5")])
    with pytest.raises(InputError, match="f.h5: not an HDF5 file"):
        load(tmp_path, write(tmp_path / "f.h5", "text"))


# ---------------------------------------------------------------- the embedded dataset and the container

def test_embedded_dataset_is_built_once_and_read_as_a_table(tmp_path):
    cfg = DataConfig(cache_dir=str(tmp_path), n_synthetic=300)
    ds = load_dataset(cfg)
    table, truth = embedded_dataset(cfg)
    assert ds.task_names == synthetic.TASKS and len(ds) == 300 and ds.seq_len == 200
    assert [int(np.sum(ds.split == s)) for s in ("train", "val", "test")] == [240, 30, 30]
    assert set(read_sites(truth)["id"]) <= set(ds.ids)
    stamp = table.stat().st_mtime_ns
    again = load_dataset(cfg)
    assert table.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.tokens, ds.tokens)
    assert embedded_dataset(DataConfig(cache_dir=str(tmp_path), n_synthetic=300, seed=1))[0] != table
    with pytest.raises(InputError, match="embedded dataset: seq_len 100 cannot hold 2 sites"):
        load_dataset(DataConfig(cache_dir=str(tmp_path), n_synthetic=300, seq_len=100))


def test_dataset_container_subset_save_load(tmp_path):
    ds = SequenceDataset(tokens(["ACGT", "GGNN", "TTTT"]), [[1], [0], [1]], ["y"],
                         ["train", "val", "train"], ["a", "b", "c"],
                         [("chr1", 0, 4), ("chr2", 5, 9), ("chr1", 9, 13)], "here")
    train = ds.subset("train")
    assert train.ids == ["a", "c"] and train.coords == [("chr1", 0, 4), ("chr1", 9, 13)]
    np.testing.assert_array_equal(train.one_hot(), one_hot(["ACGT", "TTTT"]))
    ds.save(tmp_path / "d.npz")
    back = SequenceDataset.load(tmp_path / "d.npz")
    assert (back.ids, back.coords, back.source, back.task_names) == (ds.ids, ds.coords, "here", ["y"])
    np.testing.assert_array_equal(back.tokens, ds.tokens)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        ds.subset("dev")
    with pytest.raises(ValueError, match="labels must be \\(3, 1\\)"):
        SequenceDataset(ds.tokens, [[1], [0]], ["y"], ds.split, ds.ids)
    with pytest.raises(ValueError, match="split must be"):
        SequenceDataset(ds.tokens, ds.labels, ["y"], ["train", "x", "val"], ds.ids)


def test_arguments_from_a_dataclass():
    import argparse
    from dataclasses import dataclass, field

    @dataclass
    class Knobs:
        flag: bool = field(default=False, metadata={"help": "a switch"})
        names: list[str] | None = None
        rate: float = 0.5

    parser = argparse.ArgumentParser()
    add_arguments(parser, Knobs)
    assert from_args(Knobs, parser.parse_args([])) == Knobs()
    assert from_args(Knobs, parser.parse_args(["--flag", "--names", "a", "b", "--rate", "2"])) \
        == Knobs(True, ["a", "b"], 2.0)
    parser = argparse.ArgumentParser()
    add_arguments(parser, DataConfig)
    cfg = from_args(DataConfig, parser.parse_args(["--data", "x.tsv", "--val-chroms", "chr2"]))
    assert cfg == DataConfig(data=["x.tsv"], val_chroms=["chr2"])
    assert "chromosomes held out for validation" in parser.format_help()


# ---------------------------------------------------------------- the command line

def test_cli_prints_a_summary(tmp_path, capsys):
    command(["data", "--data", write(tmp_path / "t.tsv", TABLE), "--seq-len", "8", "--cache-dir",
             str(tmp_path)])
    out = capsys.readouterr().out
    assert "3 sequences of 8 bp: train 1  val 1  test 1" in out
    assert out.splitlines()[-2].split() == ["bound", "1", "0", "1"]


BAD_CLI_INPUTS = [
    ({"t.tsv": "id\tsequence\ty\na\tACGT\t1\nb\tACGT\tn/a\n"}, ["--data", "t.tsv"],
     "error: t.tsv: line 3: label 'y' is not a number: 'n/a'"),
    ({"s.fa": FASTA, "l.csv": "id,y\nr1,1\n"}, ["--data", "s.fa", "--labels", "l.csv"],
     "error: s.fa: line 5: record 'r2' has no labels in l.csv"),
    ({"p.bed": "chrZ\t1\t50\n", "g.fa": ">chr1\nACGT\n"}, ["--data", "p.bed", "--genome", "g.fa"],
     "error: p.bed: no usable intervals (1 on chromosomes missing from the genome, 0 past"),
    ({"p.bed": "chr1\t1\t50\n"}, ["--data", "p.bed", "--genome", "none.fa"],
     "error: none.fa: genome FASTA not found"),
    ({"e.tsv": ""}, ["--data", "e.tsv"], "error: e.tsv: empty file"),
    ({"m.h5": None}, ["--data", "m.h5"], "error: m.h5: 'x' has 2 sequences but 'y' has 3"),
    ({}, ["--seq-len", "150"], "error: embedded dataset: seq_len 150 cannot hold 2 sites of every "
     "motif and every composite element and near miss (199 bp)"),
]


def write_files(folder, files):
    for name, text in files.items():
        if text is None:
            with h5py.File(folder / name, "w") as f:
                f["x"], f["y"] = np.zeros((2, 5, 4)), np.zeros((3, 1))
        else:
            (folder / name).write_text(text)


@pytest.mark.parametrize("files, args, message", BAD_CLI_INPUTS[:1])
def test_cli_bad_input_one_line_exit_2_nothing_written(tmp_path, files, args, message):
    write_files(tmp_path, files)
    result = subprocess.run([sys.executable, "-m", "caduceus_lrp.data", *args, "--cache-dir", "cache"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()] and result.stderr.startswith(message)
    assert result.stdout == "" and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("files, args, message", BAD_CLI_INPUTS[1:])
def test_cli_bad_input_in_process(tmp_path, monkeypatch, capsys, files, args, message):
    write_files(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        command(["data", *args, "--cache-dir", "cache"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.splitlines() == [err.strip()] and err.startswith(message)
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- ground truth files

def test_ground_truth_from_a_site_table_and_a_motif_table(tmp_path):
    cfg = DataConfig(cache_dir=str(tmp_path), n_synthetic=300)
    truth = read_ground_truth(embedded_dataset(cfg)[1])
    assert truth.planted == {t: [m] for t, m in synthetic.TASK_MOTIFS.items()} | {
        "TAL1+GATA1": ["MA0091.2", "MA0035.5"]}
    assert truth.decoy == synthetic.DECOY_MOTIF
    assert truth.motifs_of("TAL1+GATA1") == ["MA0091.2", "MA0035.5"]
    ids = list(truth.sites["id"].unique()[:20])
    for task, parts in (("TAL1+GATA1", ["TAL1+GATA1"]), ("GATA1+TAL1", ["GATA1", "TAL1"])):
        for i, sites in zip(ids, truth.sites_of(ids, task)):  # its own rows, else its parts'
            rows = truth.sites[(truth.sites["id"] == i) & truth.sites["task"].isin(parts)]
            assert sites == sorted(zip(rows["start"], rows["end"], rows["motif_name"]))
    motifs = write(tmp_path / "m.csv", "task,motif_id\nA,MA0139.2\nB,\"MA0035.5, MA0091.2\"\n"
                                       "decoy,MA1494.2\n")
    truth = read_ground_truth(motifs)
    assert truth.planted == {"A": ["MA0139.2"], "B": ["MA0035.5", "MA0091.2"]}
    assert truth.decoy == "MA1494.2" and truth.sites is None
    assert truth.for_tasks(["A", "C", "A+B"]) == {"A": ["MA0139.2"],
                                                  "A+B": ["MA0139.2", "MA0035.5", "MA0091.2"]}
    assert truth.sites_of(["x"], "A") == [[]]


@pytest.mark.parametrize("text, message", [
    ("id\ttask\tstart\nx\tCTCF\t3\n", "line 1: expected the columns id, task, motif_id"),
    ("", "empty file"),
    ("task\tmotif_id\nCTCF\t\n", "line 2: needs a task and a JASPAR motif ID"),
    ("task\tmotif_id\ndecoy\tMA1\ndecoy\tMA2\n", "more than one decoy motif"),
    ("id\ttask\tmotif_id\tmotif_name\tstart\tend\tstrand\ns\tA\tM\tm\t4\tx\t+\n",
     "line 2: end is not an integer: 'x'"),
    ("id\ttask\tmotif_id\tmotif_name\tstart\tend\tstrand\ns\tA\tM\tm\t4\t4\t+\n",
     "line 2: a site needs 0 <= start < end"),
])
def test_bad_ground_truth_files_are_named(tmp_path, text, message):
    path = write(tmp_path / "truth.tsv", text)
    with pytest.raises(InputError, match=f"truth.tsv: {re.escape(message)}"):
        read_ground_truth(path)
