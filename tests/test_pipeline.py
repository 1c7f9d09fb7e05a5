"""The end-to-end pipeline through its commands: reduced runs on the embedded dataset, on FASTA +
labels and on narrowPeak + genome files made here (each with a recovery report), skipping of
up-to-date steps, and bad input in every format (one line, exit status 2)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from helpers import CTCF, SPI1

from caduceus_lrp.data.synthetic import SyntheticConfig, jaspar_ppm, make_synthetic
from caduceus_lrp.pipeline import PipelineConfig, fingerprint

REDUCED = ["--epochs", "1", "--max-seqlets-per-metacluster", "2000", "--n-leiden-runs", "1",
           "--compare", "saliency", "lrp", "--max-sequences", "40",
           "--n-backgrounds", "8", "--spacing-backgrounds", "2", "--max-spacing", "10"]
NO_REPORT = [*REDUCED, "--no-modisco-report"]  # the runs on other formats: modisco's HTML is
# written by the embedded run


def run(*args, cwd=None, command=None):
    """`python -m caduceus_lrp ARGS`, or with `command` the installed `caduceus-lrp` command."""
    env = dict(os.environ, MPLBACKEND="Agg", HF_HUB_OFFLINE="1")
    start = ([str(Path(sys.executable).with_name("caduceus-lrp"))] if command
             else [sys.executable, "-m", "caduceus_lrp"])
    return subprocess.run(start + [str(a) for a in args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=900)


def assert_ok(proc):
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    proc = run("--out", out, "--n-synthetic", 1000, "--cache-dir", out / "cache", *REDUCED)
    return out, proc


@pytest.mark.slow
def test_small_end_to_end_run_writes_every_output(small_run):
    out, proc = small_run
    assert_ok(proc)
    for path in ["final_models/best_model.pt", "final_models/metrics.json", "plots/epoch1_roc.png",
                 "plots/dist_EPI.png", "plots/dist_attribution.png", "plots/zoomed_in_sample.png",
                 "plots/conservation.png", "plots/TF_motifs.png",
                 "modisco_files/modisco_windows_200bp.h5", "modisco_files/big200bp.pos.meme",
                 "modisco_files/tomtom_large_sample.tsv", "modisco_files/report/report.html",
                 "modisco_files/patterns.json", "modisco_files/recovery.json",
                 "modisco_files/summary.md", "modisco_files/summary.html", "plots/helix.png",
                 "modisco_files/instances.tsv",
                 "modisco_files/analysis/analysis.json",
                 "modisco_files/analysis/marginalization.tsv", "plots/marginalization.png",
                 "modisco_files/analysis/spacing_TAL1_TCF3_GATA1.tsv"]:
        assert (out / path).is_file(), path
    for task in ["CTCF", "SPI1"]:
        assert (out / "modisco_files/attributions" / task / "hyp.npz").is_file()
    settings = json.loads((out / "modisco_files/attributions/settings.json").read_text())
    assert settings["composite"] == "input-root" and settings["split"] == "all"
    instances = pd.read_csv(out / "modisco_files/instances.tsv", sep="\t")
    assert set(instances["round"]) <= {1, 2} and "found after replacing" in proc.stdout
    summary = (out / "modisco_files/summary.md").read_text()
    assert "| **macro** |" in summary and "Recovery of the known motifs" in summary
    assert "all tasks stacked:" in summary and "seqlets" in summary
    recovery = json.loads((out / "modisco_files/recovery.json").read_text())
    assert "stacked" in recovery and set(recovery["tasks"]) >= {"CTCF", "TAL1+GATA1"}
    analysis = json.loads((out / "modisco_files/analysis/analysis.json").read_text())
    assert analysis["pairs"][0]["task"] == "TAL1+GATA1" and "Causal analyses" in summary


@pytest.mark.slow
def test_up_to_date_steps_are_skipped_and_force_reruns(small_run):
    out, proc = small_run
    assert_ok(proc)
    again = run("--out", out, "--n-synthetic", 1000, "--cache-dir", out / "cache", *REDUCED,
                "--steps", "attribute", "motifs", "summary")
    assert_ok(again)
    assert again.stdout.count("up to date, skipped") == 3
    stale = out / "plots" / "saliency_CTCF_an_earlier_sequence.png"
    stale.write_bytes(b"an earlier run's")
    weighted = run("--out", out, "--n-synthetic", 1000, "--cache-dir", out / "cache", *REDUCED,
                   "--steps", "attribute", "--replicate-weights", "auroc")
    assert_ok(weighted)  # a changed option reruns the step, weighting the two replicates
    assert "the weighted mean of 2 replicates" in weighted.stdout
    assert not stale.exists()
    assert len(list((out / "plots").glob("saliency_CTCF_*.png"))) == 1
    line = next(x for x in weighted.stdout.splitlines() if x.startswith("replicate weights"))
    assert all(abs(sum(map(float, w.split()[-1].split("/"))) - 1) < 0.011
               for w in line.split(": ", 1)[1].split("; "))
    forced = run("--out", out, "--steps", "summary", "--force")
    assert forced.returncode == 0 and "summary: done" in forced.stdout


def plant(rng, ppm, seq, start):
    """Write a site drawn from `ppm` (w, 4) into `seq` (a list of letters) at `start`, on a
    random strand."""
    site = (rng.random((len(ppm), 1)) > np.cumsum(ppm, axis=1)[:, :3]).sum(axis=1)
    if rng.random() < 0.5:
        site = 3 - site[::-1]
    seq[start:start + len(ppm)] = ["ACGT"[b] for b in site]


@pytest.fixture(scope="module")
def fasta_data(tmp_path_factory):
    """A FASTA of 400 sequences of 200 bp with CTCF and SPI1 planted (a task each), its label
    table, and a motif-table ground truth."""
    root = tmp_path_factory.mktemp("fasta")
    cfg = SyntheticConfig(n_sequences=400, motifs={"ctcf": CTCF, "spi1": SPI1}, pairs=[],
                          decoy=None, motif_prob=0.4, seed=4)
    table = pd.read_csv(make_synthetic(cfg, root / "made")[0], sep="\t")
    (root / "reads.fa").write_text("".join(f">{i} planted\n{s[:90]}\n{s[90:]}\n"
                                           for i, s in zip(table["id"], table["sequence"])))
    table.drop(columns="sequence").to_csv(root / "labels.csv", index=False)
    (root / "truth.tsv").write_text(f"task\tmotif_id\nctcf\t{CTCF}\nspi1\t{SPI1}\n")
    return root


@pytest.fixture(scope="module")
def peak_data(tmp_path_factory):
    """A genome of three 60-kb chromosomes with CTCF and SPI1 sites at the summits of their
    narrowPeak files (40 peaks per task and chromosome), and a motif-table ground truth."""
    root = tmp_path_factory.mktemp("peaks")
    rng = np.random.default_rng(7)
    (root / "peaks").mkdir()
    fasta, records = [], {"ctcf": [], "spi1": []}
    for c in ("chr1", "chr2", "chr3"):
        seq = list(rng.choice(list("ACGT"), 60_000, p=[0.3, 0.2, 0.2, 0.3]))
        summits = rng.permutation(np.arange(300, 59_700, 700))[:80]
        for k, summit in enumerate(summits):
            task = ("ctcf", "spi1")[k % 2]
            ppm = jaspar_ppm(CTCF if task == "ctcf" else SPI1)
            plant(rng, ppm, seq, int(summit) - len(ppm) // 2)
            records[task].append(f"{c}\t{summit - 100}\t{summit + 100}\tp{k}\t0\t.\t5\t-1\t-1\t100")
        fasta.append(f">{c}\n" + "\n".join("".join(seq[i:i + 80]) for i in range(0, 60_000, 80)))
    (root / "genome.fa").write_text("\n".join(fasta) + "\n")
    for task, rows in records.items():
        (root / "peaks" / f"{task}.narrowPeak").write_text("\n".join(rows) + "\n")
    (root / "truth.tsv").write_text(f"task\tmotif_id\nctcf\t{CTCF}\nspi1\t{SPI1}\n")
    return root


def assert_recovery_report(out, tasks):
    recovery = json.loads((out / "modisco_files/recovery.json").read_text())
    assert {m["motif_id"] for m in recovery["motifs"]} == {CTCF, SPI1}
    assert set(recovery["tasks"]) == set(tasks)
    summary = (out / "modisco_files/summary.md").read_text()
    assert "Recovery of the known motifs" in summary and "all planted motifs recovered" in summary


@pytest.mark.slow
def test_fasta_and_labels_through_the_pipeline(fasta_data, tmp_path):
    proc = run("pipeline", "--data", fasta_data / "reads.fa", "--labels",
               fasta_data / "labels.csv", "--ground-truth", fasta_data / "truth.tsv",
               "--replicates", 1, "--pretrain-steps", 20, "--out", tmp_path, "--cache-dir", tmp_path / "cache", *NO_REPORT,
               command=True)
    assert_ok(proc)
    assert_recovery_report(tmp_path, ["ctcf", "spi1"])
    assert "pretrained by masked-language modelling on this dataset's training" in proc.stderr
    metrics = json.loads((tmp_path / "final_models/metrics.json").read_text())
    assert set(k for k in metrics if k.startswith("test.auroc.")) == {"test.auroc.ctcf",
                                                                       "test.auroc.spi1"}


@pytest.mark.slow
def test_peaks_and_genome_through_the_pipeline(peak_data, tmp_path):
    proc = run("pipeline", "--data", peak_data / "peaks", "--genome", peak_data / "genome.fa",
               "--val-chroms", "chr2", "--test-chroms", "chr3", "--ground-truth",
               peak_data / "truth.tsv", "--replicates", 1, "--pretrain-steps", 0, "--out",
               tmp_path, "--cache-dir",
               tmp_path / "cache", *NO_REPORT, command=True)
    assert_ok(proc)
    assert_recovery_report(tmp_path, ["ctcf", "spi1"])
    assert "240 windows of 200 bp on summits" in proc.stderr


def test_fingerprint_changes_with_parameters_and_inputs(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("a")
    key = fingerprint({"a": 1}, [f])
    assert key == fingerprint({"a": 1}, [f])
    assert key != fingerprint({"a": 2}, [f])
    f.write_text("bb")
    assert key != fingerprint({"a": 1}, [f])


def bad_files(root):
    """One bad input per format: (arguments of the pipeline, the expected message)."""
    (root / "r.fa").write_text(">r1\nACGT\n>r2\nACGA\n")
    (root / "l.csv").write_text("id,y\nr1,1\n")
    (root / "p.bed").write_text("chrZ\t1\t50\n")
    (root / "g.fa").write_text(">chr1\nACGTACGT\n")
    (root / "t.tsv").write_text("sequence\ty\nACGT\t1\nACGT\tn/a\n")
    with h5py.File(root / "m.h5", "w") as f:
        f["x"], f["y"] = np.zeros((2, 5, 4)), np.zeros((3, 1))
    (root / "gt.tsv").write_text("task\tmotif\nctcf\tMA0139.2\n")
    return [
        (["--data", root / "r.fa", "--labels", root / "l.csv"],
         "r.fa: line 3: record 'r2' has no labels in"),
        (["--data", root / "p.bed", "--genome", root / "g.fa"],
         "p.bed: no usable intervals (1 on chromosomes missing from the genome"),
        (["--data", root / "t.tsv"], "t.tsv: line 3: label 'y' is not a number: 'n/a'"),
        (["--data", root / "m.h5"], "m.h5: 'x' has 2 sequences but 'y' has 3"),
        (["--data", root / "r.fa"], "--labels: FASTA input needs a label table"),
        (["--ground-truth", root / "gt.tsv", "--steps", "motifs"], "no such directory"),
    ]


def test_bad_input_through_the_command_one_line_exit_2(tmp_path):
    """The whole path of a user's command: the process ends with one error line, status 2."""
    args, needle = bad_files(tmp_path)[0]
    proc = run("--out", tmp_path / "out", "--cache-dir", tmp_path / "cache", *args)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().endswith(errors[0]) and "Traceback" not in proc.stderr
    assert needle in errors[0], errors[0]


@pytest.mark.parametrize("case", range(6))
def test_bad_input_in_every_format_one_line_exit_2(tmp_path, capsys, case):
    from caduceus_lrp.commands import pipeline_main

    args, needle = bad_files(tmp_path)[case]
    with pytest.raises(SystemExit) as exit_:
        pipeline_main([str(a) for a in ("--out", tmp_path / "out", "--cache-dir",
                                        tmp_path / "cache", *args)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert exit_.value.code == 2 and len(errors) == 1 and needle in errors[0], err[-2000:]
    assert not (tmp_path / "out" / "final_models" / "best_model.pt").exists()
    assert not (tmp_path / "out" / "final_models" / "best_model.pt").exists()


@pytest.mark.parametrize("args,needle", [
    (["--steps", "train", "dance"], "--steps: unknown step(s) dance"),
    (["--split", "everything"], "--split: unknown split 'everything'"),
    (["--steps", "attribute"], "checkpoint not found"),
    (["--replicates", "0"], "--replicates: must be >= 1 (got 0)"),
    (["--chance-rounds", "-1"], "--chance-rounds: must be >= 0 (got -1)"),
    (["--epochs", "two"], "--epochs: invalid int value: 'two'"),
    (["--method", "deeplift"], "--method/--compare: unknown method 'deeplift'"),
    (["--replicate-weights", "best"], "--replicate-weights: choose one of equal, auroc (got "
                                      "'best')"),
])
def test_bad_options_one_line_exit_2(tmp_path, capsys, args, needle):
    from caduceus_lrp.commands import pipeline_main

    with pytest.raises(SystemExit) as exit_:
        pipeline_main(["--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert needle in err, err


def test_config_rejects_unknown_step():
    with pytest.raises(Exception, match="unknown step"):
        PipelineConfig(steps=["nope"])
