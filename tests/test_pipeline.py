"""The end-to-end pipeline: one reduced run through every step, skipping, and bad input."""
import json
import os
import subprocess
import sys

import pytest

from caduceus_lrp.pipeline import PipelineConfig, _fingerprint


def _run(*args, cwd=None):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "caduceus_lrp", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    proc = _run("--out", str(out), "--n-synthetic", "1200", "--epochs", "1",
                "--max-seqlets", "2000")
    return out, proc


def test_small_end_to_end_run_writes_every_output(small_run):
    out, proc = small_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for path in ["final_models/best_model.pt", "final_models/metrics.json", "plots/epoch1_roc.png",
                 "plots/dist_EPI.png", "plots/dist_attribution.png", "plots/zoomed_in_sample.png",
                 "plots/TF_motifs.png", "modisco_files/modisco_windows_200bp.h5",
                 "modisco_files/big200bp.pos.meme", "modisco_files/tomtom_large_sample.tsv",
                 "modisco_files/report/report.html", "modisco_files/recovery.json",
                 "modisco_files/summary.md"]:
        assert (out / path).is_file(), path
    for task in ["CTCF", "SPI1"]:
        assert (out / "modisco_files/attributions" / task / "hyp.npz").is_file()
    summary = (out / "modisco_files/summary.md").read_text()
    assert "| **macro** |" in summary and "Motif recovery" in summary
    recovery = json.loads((out / "modisco_files/recovery.json").read_text())
    assert "stacked" in recovery and "tasks" in recovery


def test_up_to_date_steps_are_skipped_and_force_reruns(small_run):
    out, proc = small_run
    assert proc.returncode == 0
    again = _run("--out", str(out), "--n-synthetic", "1200", "--epochs", "1", "--max-seqlets",
                 "2000", "--steps", "attribute", "motifs", "summary")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("up to date, skipped") == 3
    forced = _run("--out", str(out), "--steps", "summary", "--force")
    assert forced.returncode == 0 and "summary: done" in forced.stdout


def test_fingerprint_changes_with_parameters_and_inputs(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("a")
    key = _fingerprint({"a": 1}, [f])
    assert key == _fingerprint({"a": 1}, [f])
    assert key != _fingerprint({"a": 2}, [f])
    f.write_text("bb")
    assert key != _fingerprint({"a": 1}, [f])


@pytest.mark.parametrize("args,needle", [
    (["--steps", "train", "dance"], "--steps: unknown step(s) dance"),
    (["--split", "everything"], "--split: 'everything' is not one of"),
    (["--steps", "motifs"], "no such directory"),
    (["--steps", "attribute"], "checkpoint not found"),
    (["--replicates", "0"], "--replicates: must be >= 1 (got 0)"),
])
def test_bad_input_one_line_exit_2(tmp_path, args, needle):
    proc = _run("--out", str(tmp_path), *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


def test_config_rejects_unknown_step():
    with pytest.raises(Exception, match="unknown step"):
        PipelineConfig(steps=["nope"])
