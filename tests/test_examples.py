"""The viz scripts end to end on a tiny checkpoint and a small embedded dataset, and their one-line
errors (exit status 2) for bad input."""
import importlib.util
import json
import sys

import numpy as np
import pytest
import torch
from helpers import ROOT, make_checkpoint

from caduceus_lrp.data.synthetic import TASKS

SEQ_LEN = 200


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("examples")
    return make_checkpoint(folder / "best_model.pt", folder / "cache")


def run(name, argv, capsys):
    """(exit status, stdout, stderr) of the script's main(argv)."""
    try:
        status = load_script(name).main(argv)
    except SystemExit as exc:
        status = exc.code
    out = capsys.readouterr()
    return status, out.out, out.err


def test_viz_saliency_writes_maps_and_the_zoom(ckpt, tmp_path, capsys):
    status, out, _ = run("viz_saliency", ["--model", str(ckpt), "--task", "GATA1", "CTCF",
                                          "--plots-dir", str(tmp_path)], capsys)
    assert status == 0
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert "zoomed_in_sample.png" in pngs and len(pngs) == 3
    assert all(p.startswith(("saliency_GATA1_", "saliency_CTCF_", "zoomed")) for p in pngs)


def test_viz_interpret_writes_modisco_files_and_plots(ckpt, tmp_path, capsys):
    out_dir, plots = tmp_path / "attr", tmp_path / "plots"
    status, out, _ = run("viz_interpret", ["--model", str(ckpt), "--out", str(out_dir),
                                           "--plots-dir", str(plots), "--compare", "saliency", "lrp"],
                         capsys)
    assert status == 0
    tasks = sorted(p.name for p in out_dir.iterdir() if p.is_dir())
    assert set(tasks) <= set(TASKS) and "GATA1" in tasks
    assert json.loads((out_dir / "settings.json").read_text())["method"] == "lrp"
    ohe = np.load(out_dir / "GATA1" / "ohe.npz")["arr_0"]
    hyp = np.load(out_dir / "GATA1" / "hyp.npz")["arr_0"]
    assert ohe.shape == hyp.shape and ohe.shape[1:] == (4, SEQ_LEN)
    np.testing.assert_allclose(hyp.sum(1), 0, atol=1e-5)
    assert (plots / "dist_attribution.png").stat().st_size > 0
    assert (plots / "conservation.png").stat().st_size > 0
    assert "conservation error" in out and "site AUROC" in out


def test_viz_3d_dna_writes_a_png(ckpt, tmp_path, capsys):
    png = tmp_path / "helix.png"
    seq = ("ACGT" * SEQ_LEN)[:SEQ_LEN]
    status, out, _ = run("viz_3d_dna", ["--model", str(ckpt), "--sequence", seq, "--task", "SPI1",
                                        "--out", str(png), "--html", str(tmp_path / "h.html")], capsys)
    assert status == 0 and png.stat().st_size > 0
    assert (tmp_path / "h.html").exists() == (importlib.util.find_spec("plotly") is not None)


@pytest.mark.parametrize("script", ["viz_saliency", "viz_interpret", "viz_3d_dna"])
def test_help(script, capsys):
    status, out, _ = run(script, ["--help"], capsys)
    assert status == 0 and "--model" in out


@pytest.mark.parametrize("script, extra, message", [
    ("viz_saliency", ["--method", "deeplift"], "--method: unknown method 'deeplift'"),
    ("viz_saliency", ["--task", "NFKB"], "--task: unknown task 'NFKB'"),
    ("viz_saliency", ["--sequences", "ACGT"],
     f"length 4, but the model was trained on {SEQ_LEN}-bp"),
    ("viz_interpret", ["--compare", "shap"], "unknown method 'shap'"),
    ("viz_interpret", ["--composite", "nope"], "--composite: unknown LRP composite 'nope'"),
    ("viz_3d_dna", ["--sequence", "ACGTN"],
     f"length 5, but the model was trained on {SEQ_LEN}-bp"),
    ("viz_3d_dna", ["--window", "190", "230"], "--window: 190 230 is not inside"),
])
def test_bad_arguments_give_one_line(ckpt, script, extra, message, capsys):
    status, _, err = run(script, ["--model", str(ckpt), *extra], capsys)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


@pytest.mark.parametrize("script", ["viz_saliency", "viz_interpret", "viz_3d_dna"])
def test_missing_and_mismatched_checkpoints(script, tmp_path, capsys):
    status, _, err = run(script, ["--model", str(tmp_path / "none.pt")], capsys)
    assert status == 2 and "checkpoint not found" in err and err.count("\n") == 1
    bad = make_checkpoint(tmp_path / "bad.pt", tmp_path / "cache", d_model=24)
    payload = torch.load(bad, weights_only=True)
    payload["caduceus_config"]["d_model"] = 16                  # weights of another shape
    torch.save(payload, bad)
    status, _, err = run(script, ["--model", str(bad)], capsys)
    assert status == 2 and "does not match" in err and err.count("\n") == 1


def test_scripts_run_as_files():
    import subprocess

    out = subprocess.run([sys.executable, str(ROOT / "examples" / "viz_3d_dna.py"), "--help"],
                         capture_output=True, text=True, cwd=ROOT.parent)
    assert out.returncode == 0 and "double helix" in out.stdout
