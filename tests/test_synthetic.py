"""The embedded dataset: files and columns, ground truth that matches the sequences and labels,
the planting statistics of the defaults, determinism, JASPAR matrices, bad input."""
import numpy as np
import pandas as pd
import pytest

from caduceus_lrp.data.ground_truth import SITE_COLUMNS, read_sites
from caduceus_lrp.data.synthetic import (COOPERATIVE_TASK, TASK_MOTIFS, TASKS, SyntheticConfig,
                                         make_synthetic, motif_ppms)
from caduceus_lrp.sequence import reverse_complement

NAMES = {"CTCF": "CTCF", "GATA1": "GATA1", "TAL1": "TAL1::TCF3", "SPI1": "Spi1", "CEBPB": "CEBPB",
         "decoy": "HNF4A"}


def distinct(truth):
    """The planted sites once each (a composite element's sites are rows of several tasks)."""
    return truth.drop_duplicates(["id", "start", "end"])


@pytest.fixture(scope="module")
def default_data(tmp_path_factory):
    """(table, ground truth) of the default configuration."""
    table, truth = make_synthetic(SyntheticConfig(), tmp_path_factory.mktemp("syn"))
    return pd.read_csv(table, sep="\t"), read_sites(truth)


def test_files_columns_and_split(default_data):
    table, truth = default_data
    assert list(table.columns) == ["id", "sequence", *TASKS, "split"]
    assert list(truth.columns) == SITE_COLUMNS
    assert len(table) == 6000 and table["id"].is_unique
    assert (table["sequence"].str.len() == 200).all()
    assert set("".join(table["sequence"])) == set("ACGT")
    assert table["split"].value_counts().to_dict() == {"train": 4800, "val": 600, "test": 600}
    single = truth[truth["task"] != COOPERATIVE_TASK]
    assert dict(zip(single["task"], single["motif_name"])).items() <= NAMES.items()
    assert set(truth["task"]) == set(NAMES) | {COOPERATIVE_TASK}


def test_ground_truth_sites_lie_in_the_sequences_without_overlap(default_data):
    table, truth = default_data
    widths = {name: len(ppm) for name, ppm in motif_ppms().items()}
    assert ((truth["end"] - truth["start"]) == truth["motif_name"].map(widths)).all()
    assert (truth["start"] >= 0).all() and (truth["end"] <= 200).all()
    for _, sites in distinct(truth).groupby("id"):
        sites = sites.sort_values("start")
        assert (sites["start"].to_numpy()[1:] >= sites["end"].to_numpy()[:-1]).all()


def test_labels_are_the_planted_motifs(default_data):
    table, truth = default_data
    planted = truth.groupby("task")["id"].agg(set)
    for task in TASK_MOTIFS:
        np.testing.assert_array_equal(table[task], table["id"].isin(planted[task]).astype(int))
    np.testing.assert_array_equal(table[COOPERATIVE_TASK],
                                  table["id"].isin(planted[COOPERATIVE_TASK]).astype(int))


def test_the_cooperative_task_follows_the_syntax_rule(default_data):
    """Positive exactly for a composite element: TAL1::TCF3, 9 bp, then GATA1 on one strand
    (GATA1 first on the reverse strand); sequences with both motifs apart are negative."""
    table, truth = default_data
    for _, rows in truth[truth["task"] == COOPERATIVE_TASK].groupby("id"):
        rows = rows.sort_values("start")
        assert len(rows) % 2 == 0 and rows["strand"].nunique() == 1
        first, second = rows.iloc[0], rows.iloc[1]
        order = ["TAL1::TCF3", "GATA1"] if first["strand"] == "+" else ["GATA1", "TAL1::TCF3"]
        assert [first["motif_name"], second["motif_name"]] == order
        assert second["start"] - first["end"] == SyntheticConfig().pair_spacing
    apart = table[(table["GATA1"] == 1) & (table["TAL1"] == 1) & (table[COOPERATIVE_TASK] == 0)]
    assert len(apart) > 1.2 * table[COOPERATIVE_TASK].sum()  # the negatives that need syntax


def test_near_misses_are_every_arrangement_but_the_composite(default_data):
    """Negatives of the cooperative task with TAL1::TCF3 and GATA1 at most 2 x 9 bp apart: about
    pair_near_prob of the sequences, spacings over 0..18 on both sides of 9, all four strand
    combinations, the composite element's (one strand, TAL1::TCF3 first, 9 bp) only by chance."""
    table, truth = default_data
    negative = set(table.loc[table[COOPERATIVE_TASK] == 0, "id"])
    sites = truth[truth["id"].isin(negative) & truth["task"].isin(["TAL1", "GATA1"])]
    arrangements = []  # (bp between the sites, same strand, GATA1 downstream of TAL1::TCF3)
    for _, rows in sites.groupby("id"):
        for _, tal in rows[rows["task"] == "TAL1"].iterrows():
            for _, gata in rows[rows["task"] == "GATA1"].iterrows():
                gap = max(tal["start"], gata["start"]) - min(tal["end"], gata["end"])
                downstream = (gata["start"] >= tal["end"]) == (tal["strand"] == "+")
                if gap <= 18:
                    arrangements.append((gap, tal["strand"] == gata["strand"], downstream))
    assert 0.14 <= len(arrangements) / len(table) <= 0.2  # near misses and sites by chance
    gaps = {gap for gap, _, _ in arrangements}
    assert gaps == set(range(19))
    assert {(same, down) for gap, same, down in arrangements} == {(True, True), (True, False),
                                                                 (False, True), (False, False)}
    # never planted as a near miss; separately planted sites fall so by chance, rarely
    assert arrangements.count((9, True, True)) <= 0.001 * len(table)


def test_default_planting_statistics(default_data):
    table, truth = default_data
    assert 0.25 <= (table[TASKS].sum(axis=1) == 0).mean() <= 0.35
    for task in ("CTCF", "SPI1", "CEBPB"):
        assert 0.15 <= table[task].mean() <= 0.2
    for task in ("GATA1", "TAL1"):  # alone, in composite elements, near misses and pairs apart
        assert 0.38 <= table[task].mean() <= 0.46
    assert 0.13 <= table[COOPERATIVE_TASK].mean() <= 0.17
    assert 0.25 <= truth.loc[truth["task"] == "decoy", "id"].nunique() / len(table) <= 0.35
    sites = truth[truth["task"].isin(["CTCF", "SPI1", "CEBPB", "decoy"])].groupby(["id", "task"])
    assert set(sites.size()) == {1, 2}
    background = np.ones((len(table), 200), dtype=bool)
    row = {id_: i for i, id_ in enumerate(table["id"])}
    for id_, start, end in zip(truth["id"], truth["start"], truth["end"]):
        background[row[id_], start:end] = False
    letters = np.array([list(s) for s in table["sequence"]])[background]
    assert abs(np.isin(letters, ["C", "G"]).mean() - 0.41) < 0.005


def test_default_sites_are_drawn_from_the_pwm(default_data):
    table, truth = default_data
    seqs = dict(table[["id", "sequence"]].to_numpy())
    for name, ppm in motif_ppms().items():
        sites = distinct(truth)[distinct(truth)["motif_name"] == name]
        counts = np.zeros_like(ppm)
        for id_, start, end, strand in sites[["id", "start", "end", "strand"]].to_numpy():
            site = seqs[id_][start:end]
            site = site if strand == "+" else reverse_complement(site)
            counts[np.arange(len(site)), ["ACGT".index(c) for c in site]] += 1
        # binomial standard error at these counts (> 1,000 sites) is below 0.016
        np.testing.assert_allclose(counts / len(sites), ppm, atol=0.06)


def test_sites_follow_strand_and_consensus(tmp_path):
    table, truth = make_synthetic(SyntheticConfig(n_sequences=300, consensus_bias=1000.0), tmp_path)
    seqs = dict(pd.read_csv(table, sep="\t")[["id", "sequence"]].to_numpy())
    consensus = {name: "".join("ACGT"[i] for i in ppm.argmax(axis=1)) for name, ppm in motif_ppms().items()}
    truth = read_sites(truth)
    assert set(truth["strand"]) == {"+", "-"}
    for id_, name, start, end, strand in truth[["id", "motif_name", "start", "end", "strand"]].to_numpy():
        site = seqs[id_][start:end]
        assert (site if strand == "+" else reverse_complement(site)) == consensus[name]


def test_deterministic_for_a_seed(tmp_path):
    paths = [make_synthetic(SyntheticConfig(n_sequences=200, seed=s), tmp_path / str(k))
             for k, s in enumerate([5, 5, 6])]
    same = [p.read_bytes() for p in paths[0]] == [p.read_bytes() for p in paths[1]]
    assert same and paths[0][0].read_bytes() != paths[2][0].read_bytes()


def test_motif_ppms_are_the_jaspar_matrices():
    from pyjaspar import jaspardb

    ppms = motif_ppms()
    assert set(ppms) == set(NAMES.values())
    db = jaspardb(release="JASPAR2024")
    for task, matrix_id in [*TASK_MOTIFS.items(), ("decoy", "MA1494.2")]:
        motif = db.fetch_motif_by_id(matrix_id)
        counts = np.array([motif.counts[b] for b in "ACGT"]).T
        np.testing.assert_allclose(ppms[NAMES[task]], counts / counts.sum(axis=1, keepdims=True))
    assert ppms["CTCF"].shape == (15, 4)
    ppms["CTCF"][:] = 0
    assert motif_ppms()["CTCF"].sum() == pytest.approx(15)


def test_bad_configurations(tmp_path):
    with pytest.raises(ValueError, match="motif_prob must lie in"):
        SyntheticConfig(motif_prob=1.5)
    with pytest.raises(ValueError, match="cannot hold 2 sites of every motif and every composite"):
        make_synthetic(SyntheticConfig(seq_len=100), tmp_path)
    with pytest.raises(ValueError, match="pair \\('A', 'CTCF'\\): needs two of the tasks"):
        SyntheticConfig(pairs=[("A", "CTCF")])
    with pytest.raises(ValueError, match="MA9999.9: not a JASPAR 2024 matrix ID"):
        make_synthetic(SyntheticConfig(motifs={"X": "MA9999.9"}, pairs=[]), tmp_path)


def test_other_motifs_pairs_and_no_decoy(tmp_path):
    """A dataset of other JASPAR motifs (the benchmark suite's kind): its tasks, pairs, sites."""
    cfg = SyntheticConfig(n_sequences=400, seq_len=150, gc=0.5,
                          motifs={"FOXA2": "MA0047.4", "REST": "MA0138.3", "YY1": "MA0095.4"},
                          pairs=[("FOXA2", "YY1")], pair_spacing=None, decoy=None, seed=3)
    table, truth = make_synthetic(cfg, tmp_path)
    table, truth = pd.read_csv(table, sep="\t"), read_sites(truth)
    assert cfg.tasks == ["FOXA2", "REST", "YY1", "FOXA2+YY1"]
    assert list(table.columns) == ["id", "sequence", *cfg.tasks, "split"]
    assert set(truth["task"]) == {"FOXA2", "REST", "YY1"}  # no decoy rows
    planted = truth.groupby("task")["id"].agg(set)
    both = table["id"].isin(planted["FOXA2"] & planted["YY1"]).astype(int)
    np.testing.assert_array_equal(table["FOXA2+YY1"], both)
    assert set(motif_ppms(cfg)) == set(truth["motif_name"])
