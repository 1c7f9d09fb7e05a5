"""Motifs: JASPAR export, MEME round trips, Tomtom columns and statistics, peak windows, input
checks, TF-MoDISco recovery of motifs planted in synthetic attributions, the pattern report, the
`motifs` command's errors."""
import json
import re

import numpy as np
import pandas as pd
import pytest
from helpers import CEBPB, CTCF, GATA1, SPI1, TAL1_TCF3, planted_attributions
from memelite import tomtom
from memelite.io import read_meme

from caduceus_lrp.commands import main as command
from caduceus_lrp.data.synthetic import jaspar_ppm
from caduceus_lrp.errors import InputError
from caduceus_lrp.motifs import (STACKED, ModiscoConfig, check_attributions, combine_recoveries,
                                 load_patterns, motif_recovery, pattern_report, peak_starts,
                                 peak_windows, recovery_report, recovery_table, run_modisco)
from caduceus_lrp.motifs.meme import jaspar_families, jaspar_meme, read_motifs, write_meme
from caduceus_lrp.motifs.tomtom import TOMTOM_COLUMNS, tomtom_table


def main(argv):
    return command(["motifs", *argv])


@pytest.fixture(scope="session")
def db(tmp_path_factory):
    return jaspar_meme(tmp_path_factory.mktemp("jaspar") / "jaspar.meme")


def test_jaspar_meme_has_latest_versions_with_one_token_names(db):
    motifs = read_meme(str(db))
    assert len(motifs) == 879
    assert all(len(name.split()) == 1 for name in motifs)
    np.testing.assert_allclose(motifs["MA0139.2_CTCF"].T, jaspar_ppm(CTCF), atol=1e-6)
    assert "MA0080.7_Spi1" in motifs and "MA0091.2_TAL1::TCF3" in motifs
    assert not any(name.startswith("MA0139.1_") for name in motifs)
    mtime = db.stat().st_mtime_ns
    assert jaspar_meme(db) == db and db.stat().st_mtime_ns == mtime  # cached, not rewritten


def test_write_meme_round_trips_and_rejects_names_with_spaces(tmp_path):
    ppm = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]])
    write_meme(tmp_path / "m.meme", {"a.b_c": ppm})
    np.testing.assert_allclose(read_meme(str(tmp_path / "m.meme"))["a.b_c"].T, ppm)
    with pytest.raises(ValueError, match="one token"):
        write_meme(tmp_path / "x.meme", {"MA0139.2 CTCF": ppm})


def test_planted_pfms_match_their_jaspar_entries_first(db, tmp_path):
    ids = [CTCF, GATA1, TAL1_TCF3, SPI1, CEBPB]
    ctcf = jaspar_ppm(CTCF)
    queries = {i: jaspar_ppm(i) for i in ids} | {"ctcf_rc_slice": ctcf[::-1, ::-1][2:11]}
    write_meme(tmp_path / "q.meme", queries)
    table = tomtom_table(tmp_path / "q.meme", db, tmp_path / "t.tsv", n_nearest=4)

    written = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    assert list(written.columns) == TOMTOM_COLUMNS
    assert len(written) == 4 * len(queries)
    first = written.groupby("Query_ID", sort=False).head(1).set_index("Query_ID")
    for i in ids:
        assert first.loc[i, "Target_ID"].split("_")[0] == i
        assert first.loc[i, "q-value"] < 1e-5
    rc = first.loc["ctcf_rc_slice"]
    assert (rc["Target_ID"], rc["Orientation"], rc["Optimal_offset"], rc["Overlap"]) == \
        ("MA0139.2_CTCF", "-", 2, 9)
    assert rc["Target_consensus"][2:11] == rc["Query_consensus"]

    # E = p x 879 targets; q = Benjamini-Hochberg over all 879 p-values of the query
    targets, written_queries = read_motifs(db), read_motifs(tmp_path / "q.meme")
    p_all = tomtom([q.T for q in written_queries.values()], [t.T for t in targets.values()])[0]
    for name, rows in table.groupby("Query_ID", sort=False):
        np.testing.assert_allclose(rows["E-value"], rows["p-value"] * 879, rtol=1e-12)
        assert rows["p-value"].is_monotonic_increasing
        assert rows["q-value"].is_monotonic_increasing
        p = np.sort(p_all[list(queries).index(name)])
        bh = [min(1.0, min(p[j] * 879 / (j + 1) for j in range(r, 879))) for r in range(4)]
        np.testing.assert_allclose(rows["q-value"], bh, rtol=1e-9)


def test_peak_windows_centre_on_the_attribution_peak_and_clip_at_the_ends():
    n, length = 3, 1000
    ohe = np.zeros((n, length, 4), np.float32)
    ohe[..., 0] = 1
    hyp = np.zeros_like(ohe)
    for i, peak in enumerate([700, 10, 995]):
        hyp[i, peak - 3:peak + 4, 0] = -1.0  # |contribution| counts, whatever its sign
    np.testing.assert_array_equal(peak_starts(ohe, hyp, 200), [600, 0, 800])
    ohe_w, hyp_w = peak_windows(ohe, hyp, 200)
    assert ohe_w.shape == hyp_w.shape == (n, 200, 4)
    np.testing.assert_array_equal(hyp_w[0], hyp[0, 600:800])
    same = peak_windows(ohe[:, :200], hyp[:, :200], 200)
    np.testing.assert_array_equal(same[1], hyp[:, :200])
    with pytest.raises(InputError, match="longer than the sequences"):
        peak_windows(ohe[:, :100], hyp[:, :100], 200)


def _case(kind):
    ohe, hyp = planted_attributions([CTCF], 30, length=60, seed=1)
    if kind == "channels first":
        return ohe.transpose(0, 2, 1), hyp.transpose(0, 2, 1), r"\(N, 4, L\): transpose"
    if kind == "shapes differ":
        return ohe, hyp[:, :50], "differ in shape"
    if kind == "nan":
        hyp[3, 7, 1] = np.nan
        return ohe, hyp, "sequence 3 at position 7 are not finite"
    if kind == "inf":
        hyp[0, 2, 0] = np.inf
        return ohe, hyp, "not finite"
    if kind == "not one-hot":
        ohe[5, 9] = [0.5, 0.5, 0, 0]
        return ohe, hyp, "sequence 5 position 9 is not one-hot"
    if kind == "all zero":
        return ohe, np.zeros_like(hyp), "all attributions of the observed bases are zero"
    return ohe[:5], hyp[:5], "5 sequences are too few"


@pytest.mark.parametrize("kind", ["channels first", "shapes differ", "nan", "inf",
                                  "not one-hot", "all zero", "too few"])
def test_check_attributions_names_what_is_wrong(kind):
    ohe, hyp, message = _case(kind)
    with pytest.raises(InputError, match=rf"^task x: .*{message}"):
        check_attributions(ohe, hyp, "task x")


def test_run_modisco_reports_too_few_seqlets(tmp_path):
    rng = np.random.default_rng(0)
    ohe = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (30, 200))]
    hyp = rng.normal(0, 0.05, ohe.shape).astype(np.float32)
    with pytest.raises(InputError, match="found no pattern .* too few seqlets"):
        run_modisco(ohe, hyp, tmp_path / "m.h5", name="noise")
    assert not (tmp_path / "m.h5").exists()


def test_motif_recovery_takes_significant_top_matches_only():
    rows = [  # Query_ID, Target_ID, p-value, q-value (other columns are not read)
        ("pos.p0", "MA0139.2_CTCF", 1e-14, 1e-10), ("pos.p0", "MA1929.2_CTCF", 1e-9, 1e-6),
        ("pos.p1", "MA0035.4_GATA1", 1e-6, 1e-3),      # another version of the planted GATA1
        ("pos.p1", "MA0091.2_TAL1::TCF3", 1e-5, 1e-3),  # second: does not count
        ("pos.p2", "MA0466.4_CEBPB", 1e-8, 1e-5),       # the decoy
        ("neg.p0", "MA0080.7_Spi1", 1e-3, 0.2),         # not significant
    ]
    table = pd.DataFrame([[q, t, 0, p, p * 879, qv, 8, "A", "A", "+"] for q, t, p, qv in rows],
                         columns=TOMTOM_COLUMNS)
    planted = {"ctcf": CTCF, "coop": [GATA1, TAL1_TCF3], "spi1": SPI1}
    rec = motif_recovery(table, planted, decoy_id=CEBPB, q=0.05)
    found = {m["motif_id"]: m for m in rec["motifs"]}
    assert found[CTCF]["recovered"] and found[CTCF]["patterns"] == ["pos.p0"]
    assert (found[CTCF]["q_value"], found[CTCF]["rank"]) == (1e-10, 1)
    assert found[GATA1]["recovered"] and found[GATA1]["tasks"] == ["coop"]
    assert not found[TAL1_TCF3]["recovered"] and found[TAL1_TCF3]["rank"] == 2
    assert not found[SPI1]["recovered"] and found[SPI1]["rank"] is None
    assert rec["decoy"]["recovered"] and rec["decoy"]["patterns"] == ["pos.p2"]
    assert rec["decoy_found"] and not rec["all_recovered"]
    assert [u["pattern"] for u in rec["unplanted_patterns"]] == ["neg.p0", "pos.p2"]
    text = recovery_table(rec)
    assert "MA0091.2     coop                   NO        -        2" in text
    assert "(decoy)                YES" in text

    second = {m["motif_id"]: m for m in motif_recovery(table, planted, q=0.05,
                                                         max_rank=2)["motifs"]}
    assert second[TAL1_TCF3]["recovered"] and second[TAL1_TCF3]["patterns"] == ["pos.p1"]
    assert not motif_recovery(table, planted, q=1e-4)["motifs"][1]["recovered"]  # GATA1
    empty = motif_recovery(table.iloc[:0], planted, decoy_id=CEBPB)  # a run without patterns
    assert not empty["all_recovered"] and not empty["decoy_found"]
    assert empty["unplanted_patterns"] == []


def tomtom_rows(*rows):
    """A Tomtom table from (Query_ID, Target_ID, p-value, q-value) rows."""
    return pd.DataFrame([[q, t, 0, p, p * 879, qv, 8, "A", "A", "+"] for q, t, p, qv in rows],
                        columns=TOMTOM_COLUMNS)


def test_combined_recovery_counts_any_run_and_cooperative_tasks_in_their_own():
    planted = {"ctcf": CTCF, "spi1": SPI1, "coop": [GATA1, TAL1_TCF3]}
    stacked = motif_recovery(tomtom_rows(
        ("pos.p0", "MA0139.2_CTCF", 1e-12, 1e-9),
        ("pos.p1", "MA0136.4_Elf5", 1e-8, 1e-5), ("pos.p1", "MA0080.7_Spi1", 2e-8, 1e-5),
        ("pos.p2", "MA0035.5_GATA1", 1e-7, 1e-4), ("pos.p3", "MA0091.2_TAL1::TCF3", 1e-9, 1e-6)),
        planted, decoy_id=CEBPB)
    runs = {"spi1": ({"spi1": SPI1}, [("pos.p0", "MA0080.7_Spi1", 1e-9, 1e-6)]),
            "coop": ({"coop": [GATA1, TAL1_TCF3]}, [("pos.p0", "MA0035.5_GATA1", 1e-7, 1e-4)]),
            "ctcf": ({"ctcf": CTCF}, [("pos.p0", "MA0466.4_CEBPB", 1e-7, 1e-4)])}
    tasks = {t: motif_recovery(tomtom_rows(*rows), p, decoy_id=CEBPB)
             for t, (p, rows) in runs.items()}
    assert not stacked["all_recovered"]  # Spi1 is second behind Elf5 there
    combined = combine_recoveries(stacked, tasks)
    found = {m["motif_id"]: m for m in combined["motifs"]}
    assert found[SPI1]["recovered"] and found[SPI1]["runs"] == ["task spi1"]
    assert found[TAL1_TCF3]["runs"] == ["stacked"]
    assert combined["multi_motif_tasks"] == {"coop": False}  # TAL1::TCF3 not in its own run
    assert not combined["all_recovered"] and combined["decoy_found"]  # CEBPB, in task ctcf

    tasks["coop"] = motif_recovery(tomtom_rows(("pos.p0", "MA0035.5_GATA1", 1e-7, 1e-4),
                                               ("pos.p1", "MA0091.2_TAL1::TCF3", 1e-9, 1e-6)),
                                   {"coop": [GATA1, TAL1_TCF3]})
    tasks["ctcf"] = motif_recovery(tomtom_rows(), {"ctcf": CTCF}, decoy_id=CEBPB)
    combined = combine_recoveries(stacked, tasks)
    assert combined["all_recovered"] and not combined["decoy_found"]
    text = recovery_report({"stacked": stacked, "tasks": tasks} | combined)
    assert "  MA0080.7     spi1                   yes  task spi1\n" in text
    assert text.endswith("all planted motifs recovered: yes; decoy found: no")


def test_jaspar_families_come_from_pyjaspar():
    families = jaspar_families([GATA1, "MA0036.4_GATA2", SPI1 + "_Spi1", "MA9999.1_none"])
    assert families[GATA1] == families["MA0036.4_GATA2"] == ("C4-GATA-related",)
    assert families[SPI1 + "_Spi1"] == ("Ets-related",)
    assert families["MA9999.1_none"] == ()  # not in the release: no family, no error


def test_family_matches_are_reported_beside_the_top_match_verdict():
    families = {GATA1: ("C4-GATA-related",), "MA0036.4": ("C4-GATA-related",),
                TAL1_TCF3: ("Tal-related",), CTCF: ("zinc fingers",), CEBPB: ("CEBP-related",)}
    coop = tomtom_rows(("pos.p0", "MA0036.4_GATA2", 1e-7, 1e-4),   # a paralog first ...
                       ("pos.p0", "MA0035.5_GATA1", 2e-7, 1e-4),   # ... the planted one second
                       ("pos.p1", "MA0091.2_TAL1::TCF3", 1e-9, 1e-6),
                       ("pos.p2", "MA0036.4_GATA2", 1e-3, 0.2))    # not significant
    planted = {"coop": [GATA1, TAL1_TCF3]}
    rec = motif_recovery(coop, planted, decoy_id=CEBPB, families=families)
    found = {m["motif_id"]: m for m in rec["motifs"]}
    assert not found[GATA1]["recovered"] and found[GATA1]["rank"] == 2  # the verdict is unchanged
    assert found[GATA1]["family_recovered"]
    assert found[GATA1]["family_matches"] == ["MA0036.4_GATA2"]
    assert found[TAL1_TCF3]["family_matches"] == ["MA0091.2_TAL1::TCF3"]
    assert not rec["decoy"]["family_recovered"]
    assert "MA0035.5     coop                   NO        -        2    yes" in recovery_table(rec)
    assert "family" not in motif_recovery(coop, planted)["motifs"][0]  # without families
    none = motif_recovery(coop.iloc[:0], planted, families=families)  # a run without patterns
    assert not none["motifs"][0]["family_recovered"] and none["motifs"][0]["family_matches"] == []

    combined = combine_recoveries(rec, {"coop": rec})
    assert not combined["all_recovered"] and combined["multi_motif_tasks"] == {"coop": False}
    assert combined["multi_motif_tasks_family"] == {"coop": True}
    gata = combined["motifs"][0]
    assert gata["family_runs"] == ["stacked", "task coop"] and gata["family"] == ["C4-GATA-related"]
    text = recovery_report({"stacked": rec, "tasks": {"coop": rec}} | combined)
    assert "NO   - | family C4-GATA-related: MA0036.4_GATA2\n" in text
    assert "all found in its own run: NO (by family: yes)" in text


@pytest.fixture(scope="module")
def discovered(tmp_path_factory, db):
    """The CLI on two synthetic tasks (CTCF; SPI1) with GATA1 as an unscored decoy in every
    sequence, and a task of 10 sequences: the folder of its outputs. Two replicates: one whose
    contributions are the attributions', one of noise."""
    root = tmp_path_factory.mktemp("motifs")
    tasks = {"ctcf": ([CTCF], 500), "spi1": ([SPI1], 500), "tiny": ([CTCF], 10)}  # tiny: too few
    for k, (task, (ids, n)) in enumerate(tasks.items()):
        ohe, hyp = planted_attributions(ids, n, decoy=GATA1 if n > 10 else None,
                                        seed=9 if n == 10 else k)
        (root / "attr" / task).mkdir(parents=True)
        np.savez(root / "attr" / task / "ohe.npz", ohe.transpose(0, 2, 1))
        np.savez(root / "attr" / task / "hyp.npz", hyp.transpose(0, 2, 1))
        noise = np.random.default_rng(k).normal(0, 0.05, ohe.shape[:2])
        np.savez(root / "attr" / task / "replicates.npz", np.stack([(ohe * hyp).sum(-1), noise]))
    (root / "truth.tsv").write_text("task\tmotif_id\nctcf\tMA0139.2\nspi1\tMA0080.7\n"
                                    f"decoy\t{GATA1}\n")
    code = main(["--attributions", str(root / "attr"), "--out", str(root / "out"),
                 "--plots", str(root / "plots"), "--jaspar", str(db),
                 "--ground-truth", str(root / "truth.tsv")])
    assert code == 0
    return root


@pytest.mark.slow
def test_discover_recovers_the_planted_motifs_and_not_the_decoy(discovered):
    rec = json.loads((discovered / "out" / "recovery.json").read_text())
    assert rec["all_recovered"] and not rec["decoy_found"]
    stacked = {m["motif_id"]: m for m in rec["stacked"]["motifs"]}
    assert set(stacked) == {CTCF, SPI1}
    assert all(m["recovered"] and m["q_value"] < 0.05 for m in stacked.values())
    for task, motif_id in (("ctcf", CTCF), ("spi1", SPI1)):  # each in its own run too
        assert [m["motif_id"] for m in rec["tasks"][task]["motifs"]] == [motif_id]
        assert rec["tasks"][task]["all_recovered"]
    assert rec["tasks"]["tiny"]["motifs"] == []  # its run failed; the others went on
    assert stacked[SPI1]["family"] == ["Ets-related"] and stacked[SPI1]["family_recovered"]
    assert stacked[CTCF]["replicates"] == 2 and stacked[CTCF]["replicates_agreeing"] == 1
    assert "(1/2 replicates agree)" in recovery_report(rec)
    assert not (discovered / "out" / "tasks" / "tiny").exists()
    assert (discovered / "plots" / "TF_motifs.png").stat().st_size > 10_000


@pytest.mark.slow
def test_pattern_report_lists_every_run_with_matches_and_families(discovered):
    report = json.loads((discovered / "out" / "patterns.json").read_text())
    assert list(report) == [STACKED, "task ctcf", "task spi1", "task tiny"]
    assert "too few for TF-MoDISco" in report["task tiny"]
    for run in (STACKED, "task ctcf", "task spi1"):
        for row in report[run]:
            assert row["n_seqlets"] >= 20 and 0 < row["peak_share"] <= 1
            assert len(row["matches"]) == ModiscoConfig().n_matches
            assert set(row["consensus"]) <= set("ACGT")
    top = {r["matches"][0]["target"]: r for r in report[STACKED] if r["matches"][0]["significant"]}
    assert "MA0139.2_CTCF" in top and top["MA0139.2_CTCF"]["matches"][0]["family"] == \
        ["More than 3 adjacent zinc fingers"]
    assert top["MA0139.2_CTCF"]["peak_share"] < 0.3  # a motif, not a single-base spike
    for row in top.values():  # the replicate with the attributions' contributions agrees
        assert row["replicates_agreeing"] == 1
        assert row["replicate_support"][0] > 0.9 and row["replicate_support"][1] < 0.2
    assert "1/2 replicates" in pattern_report(report)


@pytest.mark.slow
def test_discover_writes_modisco_meme_tomtom_and_report_files(discovered, db):
    out = discovered / "out"
    patterns = load_patterns(out / "modisco_windows_200bp.h5")
    pos = [p for p in patterns if p.name.startswith("pos_patterns.")]
    meme = read_meme(str(out / "big200bp.pos.meme"))
    assert list(meme) == [p.name for p in pos]
    for p in pos:
        ppm = meme[p.name].T
        np.testing.assert_allclose(ppm, p.trimmed_ppm(0.3), atol=1e-6)
        np.testing.assert_allclose(ppm.sum(axis=1), 1, atol=1e-5)
        score = np.abs(p.cwm).sum(axis=1)
        kept = score[p.trim(0.3)]
        assert kept[0] >= 0.3 * score.max() and kept[-1] >= 0.3 * score.max()
    assert set(read_meme(str(out / "big200bp.neg.meme"))) == \
        {p.name for p in patterns if p.name.startswith("neg_patterns.")}

    table = pd.read_csv(out / "tomtom_large_sample.tsv", sep="\t")
    assert list(table.columns) == TOMTOM_COLUMNS
    assert set(table["Query_ID"]) == {p.name for p in patterns}
    for _, rows in table.groupby("Query_ID"):
        assert len(rows) == ModiscoConfig().n_matches
        assert rows["p-value"].is_monotonic_increasing and rows["q-value"].is_monotonic_increasing
    html = (out / "report" / "report.html").read_text()
    assert all(p.name in html for p in patterns) and "MA0139.2_CTCF" in html
    for task in ("ctcf", "spi1"):
        assert (out / "tasks" / task / "tomtom.tsv").is_file()
        assert load_patterns(out / "tasks" / task / "modisco.h5")

    windows = np.load(out / "modisco_windows_200bp.npz")
    assert windows["seq"].shape == windows["contrib"].shape == (1010, 200)
    assert list(np.unique(windows["task"])) == ["ctcf", "spi1", "tiny"]
    assert all(p.example_idx.max() < 1010 and p.end.max() <= 200 for p in patterns)


def _bad_inputs(root, kind):
    """An attributions folder (and extra arguments) with one thing wrong; the expected text."""
    ohe, hyp = planted_attributions([CTCF], 25, length=60, seed=3)
    task = root / "attr" / "t"
    task.mkdir(parents=True)
    arrays = {"ohe.npz": ohe.transpose(0, 2, 1), "hyp.npz": hyp.transpose(0, 2, 1)}
    extra, message = [], None
    if kind == "no folder":
        return root / "missing", [], "missing: no such directory"
    if kind == "missing hyp":
        del arrays["hyp.npz"]
        message = "hyp.npz: no such file"
    elif kind == "wrong key":
        np.savez(task / "hyp.npz", scores=arrays.pop("hyp.npz"))
        message = "no array 'arr_0'"
    elif kind == "wrong shape":
        arrays["hyp.npz"] = hyp
        message = r"arr_0 must have shape \(N, 4, L\), got \(25, 60, 4\)"
    elif kind == "nan":
        arrays["hyp.npz"][2, 1, 5] = np.nan
        message = "sequence 2 at position 5 are not finite"
    elif kind == "all zero":
        arrays["hyp.npz"] = np.zeros_like(arrays["hyp.npz"])
        message = "all attributions of the observed bases are zero"
    elif kind == "odd window":
        extra, message = ["--window", "201"], "window: must be even"
    elif kind == "bad ground truth":
        (root / "gt.tsv").write_text("task\tmotif\nt\tMA0139.2\n")
        extra, message = ["--ground-truth", str(root / "gt.tsv")], r"gt.tsv: line 1: expected"
    elif kind == "unknown motif":
        (root / "gt.tsv").write_text("task\tmotif_id\nt\tMA9999.9\n")
        extra, message = ["--ground-truth", str(root / "gt.tsv")], \
            r"gt.tsv: motif IDs not in the JASPAR database: MA9999.9"
    for name, x in arrays.items():
        np.savez(task / name, x)
    return root / "attr", extra, message


@pytest.mark.parametrize("kind", ["no folder", "missing hyp", "wrong key", "wrong shape", "nan",
                                  "all zero", "odd window", "bad ground truth", "unknown motif"])
def test_cli_bad_inputs_print_one_line_and_exit_2(tmp_path, capsys, kind):
    attr, extra, message = _bad_inputs(tmp_path, kind)
    with pytest.raises(SystemExit) as exit_info:
        main(["--attributions", str(attr), "--out", str(tmp_path / "out"), *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_replicate_support_tells_a_replicate_that_attributes_the_seqlets_from_one_that_does_not():
    from caduceus_lrp.motifs import Pattern
    from caduceus_lrp.motifs.agreement import replicate_support

    rng = np.random.default_rng(0)
    n, w, s = 200, 60, 80
    contributions = rng.normal(0, 0.3, (3, n, w))
    rows, starts = rng.choice(n, s, replace=False), rng.integers(0, w - 10, s)
    for row, start in zip(rows, starts):
        contributions[0, row, start:start + 10] += 3.0       # replicate 0 learned the motif
        contributions[2, row, start:start + 10] -= 3.0       # replicate 2 its opposite
    contributions[0] *= 10                                   # on a larger logit scale
    ensemble = contributions[:2].mean(axis=0)                # the mean of replicates 0 and 1
    zeros = np.zeros((10, 4))
    pattern = Pattern("pos_patterns.pattern_0", zeros, zeros, zeros, rows, starts, starts + 10,
                      np.zeros(s, bool))
    support = replicate_support(pattern, contributions, ensemble)
    assert support[0] > 0.95 and support[1] < 0.1 and support[2] == 0
    negative = Pattern("neg_patterns.pattern_0", zeros, zeros, zeros, rows, starts, starts + 10,
                       np.zeros(s, bool))
    assert replicate_support(negative, contributions, contributions[2])[2] > 0.95
