"""The causal analyses (caduceus_lrp.analysis): marginalization, spacing, instances and variants
against independent computations on small models whose effects are known analytically,
reverse-complement handling, the files and figures, and bad input through each command (one
line, exit status 2, nothing written)."""
import numpy as np
import pandas as pd
import pytest
import torch
from helpers import CTCF, SPI1, make_checkpoint
from scipy import stats

from caduceus_lrp.analysis import (
    AnalysisConfig,
    Motif,
    Variants,
    backgrounds,
    call_instances,
    choose_pairs,
    instance_recovery,
    marginalize,
    parse_pairs,
    plot_marginalization,
    plot_spacing,
    plot_variants,
    preferred,
    read_instances,
    read_variant_table,
    read_vcf,
    resolve_motif,
    spacing_sweep,
    tied_phrase,
    variant_effects,
    write_instances,
)
from caduceus_lrp.data import GroundTruth, SequenceDataset
from caduceus_lrp.data.synthetic import jaspar_ppm
from caduceus_lrp.errors import InputError
from caduceus_lrp.sequence import BASES, flip_lc, one_hot

L = 40


class Linear(torch.nn.Module):
    """logits = sum_{l, c} x[l, c] W[l, c, t] + b: any substitution's effect is a difference of
    weights. With `rc`, the reverse complement's score is added (an RC-invariant model)."""

    def __init__(self, length=L, tasks=2, seed=0, rc=False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = torch.nn.Parameter(torch.randn(length, 4, tasks, generator=g, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.randn(tasks, generator=g, dtype=torch.float64))
        self.rc = rc
        self.task_names = [f"t{k}" for k in range(tasks)]

    def forward(self, onehot):
        out = torch.einsum("blc,lct->bt", onehot, self.W) + self.b
        return out + torch.einsum("blc,lct->bt", flip_lc(onehot), self.W) if self.rc else out


class Bilinear(torch.nn.Module):
    """logit = (u . x)(v . x): the interaction of two insertions is known in closed form."""

    def __init__(self, length=L, seed=1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.u = torch.nn.Parameter(torch.randn(length, 4, generator=g, dtype=torch.float64))
        self.v = torch.nn.Parameter(torch.randn(length, 4, generator=g, dtype=torch.float64))
        self.task_names = ["pair"]

    def forward(self, onehot):
        return ((onehot * self.u).sum((1, 2)) * (onehot * self.v).sum((1, 2)))[:, None]


class Composite(torch.nn.Module):
    """logit = number of exact A-gap-B elements (A, `gap` bp, then B, forward strand; `gap` one
    spacing or a tuple of them)."""

    def __init__(self, a, b, gap):
        super().__init__()
        self.a, self.b = torch.tensor(one_hot(a)[0]), torch.tensor(one_hot(b)[0])
        self.gaps = gap if isinstance(gap, tuple) else (gap,)
        self.dummy = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        self.task_names = ["A+B", "other"]

    def forward(self, onehot):
        def hits(motif):  # (b, positions): 1 where the motif matches exactly
            windows = onehot.unfold(1, len(motif), 1)  # (b, positions, 4, w)
            return (windows * motif.T.to(onehot)).sum(2).prod(-1)
        a, b = hits(self.a), hits(self.b)
        score = sum((a[:, :b.shape[1] - shift] * b[:, shift:]).sum(1)
                    for shift in (len(self.a) + gap for gap in self.gaps))
        return torch.stack([score, torch.zeros_like(score)], 1) + self.dummy


def random_onehot(n, length=L, seed=0):
    return np.eye(4)[np.random.default_rng(seed).integers(0, 4, (n, length))]


def interval(d):
    """mean, low, high of paired differences (n, ...) computed here, independently."""
    n = len(d)
    half = stats.t.ppf(0.975, n - 1) * np.std(d, axis=0, ddof=1) / np.sqrt(n)
    return d.mean(0), d.mean(0) - half, d.mean(0) + half


def inserted_effect(W, x, seq, start):
    """(N, t) logit change of inserting `seq` (N keeps the base) at `start` into x (N, L, 4)."""
    out = np.zeros((len(x), W.shape[-1]))
    for j, base in enumerate(seq):
        if base != "N":
            out += W[start + j, BASES.index(base)] - x[:, start + j] @ W[start + j]
    return out


# ------------------------------------------------------------------------ marginalization
def test_marginalization_matches_an_independent_computation_on_a_linear_model():
    model = Linear()
    W = model.W.detach().numpy()
    x = random_onehot(30)
    motifs = [Motif("six", "sequence", "ACGTTG"), Motif("gapped", "sequence", "GGNNNCC")]
    table = marginalize(model, motifs, x, batch_size=7)
    assert list(table.columns[:7]) == ["motif", "source", "task", "effect", "ci_low", "ci_high",
                                       "n"]
    assert table.shape[0] == 4 and (table["n"] == 30).all()
    for motif in motifs:
        start = (L - motif.width) // 2
        mean, low, high = interval(inserted_effect(W, x, motif.sequence, start))
        rows = table[table["motif"] == motif.name]
        np.testing.assert_allclose(rows["effect"], mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(rows["ci_low"], low, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(rows["ci_high"], high, rtol=1e-9, atol=1e-9)


def test_an_rc_invariant_model_gives_a_motif_and_its_reverse_complement_the_same_effects():
    model = Linear(rc=True)
    x = random_onehot(20)
    x = np.concatenate([x, flip_lc(x)])  # backgrounds closed under reverse complement
    motif = Motif("m", "sequence", "AACGTTGC")  # L - w even: the centre is its own mirror
    forward, reverse = (marginalize(model, [m], x) for m in (motif, motif.reverse_complement()))
    assert reverse["consensus"].iloc[0] == "GCAACGTT"
    np.testing.assert_allclose(forward["effect"], reverse["effect"], atol=1e-9)
    np.testing.assert_allclose(forward["ci_low"], reverse["ci_low"], atol=1e-9)


def test_backgrounds_are_shuffles_or_negatives_on_both_strands():
    rng = np.random.default_rng(0)
    tokens = rng.integers(7, 11, (12, 30)).astype(np.uint8)
    labels = np.zeros((12, 2), np.float32)
    labels[:6, 0] = 1
    split = np.array(["test"] * 10 + ["train"] * 2)
    data = SequenceDataset(tokens, labels, ["a", "b"], split, [f"s{i}" for i in range(12)])
    shuffled = backgrounds(data, "shuffle", n=4, seed=1)
    assert shuffled.shape == (8, 30, 4)
    np.testing.assert_array_equal(shuffled[4:], flip_lc(shuffled[:4]))
    originals = data.subset("test").one_hot()

    def dinucleotides(s):
        codes = s.argmax(-1)
        return sorted(zip(codes[:-1], codes[1:]))
    counts = [dinucleotides(o) for o in originals]
    assert all(dinucleotides(s) in counts for s in shuffled[:4])
    negatives = backgrounds(data, "negatives", n=50, both_strands=False)
    assert len(negatives) == 4  # the test rows 6..9 are negative for both tasks
    with pytest.raises(InputError, match="no test sequence is negative"):
        labels[:, 1] = 1
        backgrounds(SequenceDataset(tokens, labels, ["a", "b"], split, data.ids), "negatives")


# ------------------------------------------------------------------------ spacing
def test_spacing_interaction_of_a_bilinear_model_is_known_analytically():
    model = Bilinear()
    u, v = model.u.detach().numpy()[..., None], model.v.detach().numpy()[..., None]
    x = random_onehot(12, seed=3)
    a, b = Motif("A", "sequence", "ACG"), Motif("B", "sequence", "TTAG")
    table = spacing_sweep(model, a, b, x, spacings=range(4))
    assert table.shape[0] == 4 * 4 * 1
    start = (L - (3 + 3 + 4)) // 2
    alpha, beta = (x * u[..., 0]).sum((1, 2)), (x * v[..., 0]).sum((1, 2))  # (N,) u.x, v.x
    pair_effects = {}
    for (orientation, spacing), row in table.set_index(["orientation", "spacing"]).iterrows():
        sa = a.sequence if orientation[0] == "+" else a.reverse_complement().sequence
        sb = b.sequence if orientation[1] == "+" else b.reverse_complement().sequence
        start_b = start + 3 + spacing
        alpha_a, beta_a = inserted_effect(u, x, sa, start), inserted_effect(v, x, sa, start)
        alpha_b, beta_b = (inserted_effect(u, x, sb, start_b),
                           inserted_effect(v, x, sb, start_b))
        mean, low, high = interval(alpha_a * beta_b + alpha_b * beta_a)
        assert row["interaction"] == pytest.approx(mean[0], abs=1e-9)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low[0], high[0]), abs=1e-9)
        pair_effects[orientation, spacing] = ((alpha + alpha_a[:, 0] + alpha_b[:, 0])
                                              * (beta + beta_a[:, 0] + beta_b[:, 0])
                                              - alpha * beta)  # (N,)
    peak = max(pair_effects, key=lambda k: pair_effects[k].mean())
    for (orientation, spacing), row in table.set_index(["orientation", "spacing"]).iterrows():
        _, low, high = interval(pair_effects[orientation, spacing] - pair_effects[peak])
        assert row["effect"] == pytest.approx(pair_effects[orientation, spacing].mean(), abs=1e-9)
        if (orientation, spacing) != peak:
            assert (row["vs_peak_low"], row["vs_peak_high"]) == pytest.approx((low, high),
                                                                               abs=1e-9)
    best = preferred(table, "pair")
    assert (best["orientation"], best["spacing"]) == peak
    assert best["tied"] == [f"{o} {s}" for (o, s), row in
                            table.set_index(["orientation", "spacing"]).iterrows()
                            if (o, s) != peak and row["vs_peak_high"] >= 0]


def test_spacing_peaks_at_the_planted_arrangement_with_a_positive_interaction():
    model = Composite("CACCTG", "GATAAG", gap=5)
    x = random_onehot(16, length=60, seed=2)
    table = spacing_sweep(model, Motif("A", "sequence", "CACCTG"),
                          Motif("B", "sequence", "GATAAG"), x, spacings=range(9))
    best = preferred(table, "A+B")
    assert (best["orientation"], best["spacing"]) == ("++", 5)
    assert best["effect"] == pytest.approx(1.0) and best["interaction_ci"][0] > 0.5
    assert preferred(table, "A+B", by="interaction")["spacing"] == 5
    assert best["tied"] == []  # one sharp peak


def test_a_broad_peak_names_the_spacings_tied_with_it():
    """A model as happy at 5 as at 6 bp: the peak is the first, the other tied with it."""
    model = Composite("CACCTG", "GATAAG", gap=(5, 6))
    x = random_onehot(16, length=60, seed=2)
    table = spacing_sweep(model, Motif("A", "sequence", "CACCTG"),
                          Motif("B", "sequence", "GATAAG"), x, spacings=range(9))
    best = preferred(table, "A+B")
    assert (best["orientation"], best["spacing"], best["tied"]) == ("++", 5, ["++ 6"])
    assert preferred(table, "A+B", by="interaction")["tied"] == []
    assert tied_phrase(best) == ", tied with ++ 6 bp"
    assert tied_phrase({"orientation": "++", "spacing": 5}) == ""  # an earlier analysis.json
    fig = plot_spacing(table, "A", "B", "A+B")
    assert fig.axes[0].get_title() and fig.axes[1].get_xlabel()


def test_pairs_come_from_flags_cooperative_tasks_or_are_rejected():
    assert parse_pairs(["A", "B", "C+D"]) == [("C", "D"), ("A", "B")]
    with pytest.raises(InputError, match="odd number"):
        parse_pairs(["A", "B", "C"])
    truth = GroundTruth({"TAL1": ["MA0091.2"], "GATA1": ["MA0035.5"]}, decoy="MA1494.2")
    (a, b), = choose_pairs(None, ["TAL1", "GATA1", "TAL1+GATA1"], None, truth)
    assert (a.name, b.name) == ("TAL1::TCF3", "GATA1") and a.match == "MA0091.2"
    assert resolve_motif("decoy", None, truth).name == "HNF4A"
    assert resolve_motif("acgn").sequence == "ACGN"
    with pytest.raises(InputError, match="not a pattern"):
        resolve_motif("NOT_A_MOTIF", None, truth)


# ------------------------------------------------------------------------ variants
def test_variant_effects_of_a_linear_model_are_weight_differences():
    model = Linear()
    W = model.W.detach().numpy()
    x = random_onehot(5, seed=4)
    positions = np.array([0, 7, 20, 39, 20])
    refs = [BASES[int(x[i, p].argmax())] for i, p in enumerate(positions)]
    alts = [BASES[(BASES.index(r) + 1 + i % 3) % 4] for i, r in enumerate(refs)]
    variants = Variants([f"v{i}" for i in range(5)], positions, refs, alts, x)
    table = variant_effects(model, variants, method="grad_x_input", flank=3)
    assert table.shape[0] == 5 * 2
    for i, (p, r, a) in enumerate(zip(positions, refs, alts)):
        rows = table[table["id"] == f"v{i}"]
        expected = W[p, BASES.index(a)] - W[p, BASES.index(r)]
        np.testing.assert_allclose(rows["delta"], expected, atol=1e-9)
        top = rows.loc[rows["delta"].abs().idxmax()]
        # gradient x input of a linear model: only the variant's base changes its contribution
        assert top["attribution_delta"] == pytest.approx(top["delta"], abs=1e-6)
    assert variants.tracks["ref"].shape == (5, 7, 4)
    assert not variants.tracks["ref"][0, :3].any()  # position 0: the left flank is off the end
    assert len(plot_variants(table, variants.tracks, top=3).axes) == 9


def test_variant_table_and_vcf_are_checked_line_by_line(tmp_path):
    tokens = np.full((2, 20), 7, np.uint8)  # all A
    data = SequenceDataset(tokens, np.zeros((2, 1)), ["t"], np.array(["test", "test"]),
                           ["s0", "s1"])
    good = tmp_path / "v.tsv"
    good.write_text("id\tposition\tref\talt\ns1\t3\tA\tG\n")
    variants = read_variant_table(good, data)
    assert variants.ids == ["s1"] and variants.x_alt()[0, 3, 2] == 1
    for body, needle in [("s9\t3\tA\tG", "line 2: sequence 's9'"),
                         ("s1\t20\tA\tG", "line 2: position 20 is outside"),
                         ("s1\t3\tC\tG", "line 2: ref C is not the base"),
                         ("s1\t3\tA\tAT", "line 2: alt must be one base")]:
        (tmp_path / "bad.tsv").write_text("id\tposition\tref\talt\n" + body + "\n")
        with pytest.raises(InputError, match=needle):
            read_variant_table(tmp_path / "bad.tsv", data)
    genome = tmp_path / "g.fa"
    chrom = "ACGT" * 25
    genome.write_text(">chr1\n" + chrom + "\n")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n"
                   "chr1\t5\trs1\tA\tC,G\nchr1\t100\t.\tT\tA\n")
    variants = read_vcf(vcf, genome, 20)
    assert variants.ids == ["rs1", "rs1", "chr1:100T>A"] and variants.pos == [5, 5, 100]
    assert list(variants.position) == [4, 4, 19]  # windows clipped to the chromosome
    assert variants.x_ref[2, 19, 3] == 1
    vcf.write_text("chr1\t6\t.\tA\tC\n")
    with pytest.raises(InputError, match="line 1: REF A is not the genome's base"):
        read_vcf(vcf, genome, 20)


# ------------------------------------------------------------------------ instances
def planted(n=40, length=120, seed=0):
    """One-hot, hypothetical attributions (log-odds at planted CTCF and Spi1 sites, noise
    elsewhere) and the site table."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, 4, (n, length))
    hyp = rng.normal(0, 0.05, (n, length, 4))
    rows = []
    for k, (motif_id, name) in enumerate([(CTCF, "CTCF"), (SPI1, "Spi1")]):
        ppm = jaspar_ppm(motif_id)
        w = len(ppm)
        log_odds = np.log2((ppm + 0.01) / 0.26)
        for i in range(n):
            s = k * 60 + rng.integers(0, 60 - w)
            site = ppm.argmax(1)
            minus = rng.random() < 0.5
            seq[i, s:s + w] = 3 - site[::-1] if minus else site
            hyp[i, s:s + w] += np.abs(log_odds[::-1, ::-1] if minus else log_odds)
            rows.append([f"q{i}", "task", motif_id, name, s, s + w, "-" if minus else "+"])
    sites = pd.DataFrame(rows, columns=["id", "task", "motif_id", "motif_name", "start", "end",
                                        "strand"])
    return np.eye(4, dtype=np.float32)[seq], hyp.astype(np.float32), sites


def test_instance_recovery_counts_sites_and_family_matches_and_files_round_trip(tmp_path):
    sites = pd.DataFrame([["s0", "T", CTCF, "CTCF", 10, 29, "+"],
                          ["s1", "T", CTCF, "CTCF", 50, 69, "-"],
                          ["s1", "T", CTCF, "CTCF", 120, 139, "+"],
                          ["s1", "decoy", "MA1494.2", "HNF4A", 100, 113, "+"]],
                         columns=["id", "task", "motif_id", "motif_name", "start", "end",
                                  "strand"])
    truth = GroundTruth({"T": [CTCF]}, "MA1494.2", sites)
    table = pd.DataFrame(
        [["s0", 12, 20, "+", "pos_patterns.pattern_0", "MA1929.2_CTCF", 3.0, "T", 1e-4, "fimo",
          1e-3],
         ["s0", 70, 80, "-", "", "MA1102.3_CTCFL", 2.0, "T", 1e-3, "fimo", 1e-3],  # off-site
         ["s1", 40, 52, "+", "", "MA0080.7_Spi1", 1.0, "T", 1e-3, "fimo", 1e-3],  # other family
         ["s1", 98, 104, "+", "", "MA1494.2_HNF4A", 1.0, "T", 1e-3, "tomtom", 1e-3]],
        columns=["id", "start", "end", "strand", "pattern", "match", "score", "task", "p_value",
                 "match_source", "seqlet_p"]).assign(round=1)
    families = {CTCF: ("zf",), "MA1929.2_CTCF": ("zf",), "MA1102.3_CTCFL": ("zf",),
                "MA0080.7_Spi1": ("ets",), "MA1494.2_HNF4A": ("nr",), "MA1494.2": ("nr",)}
    recovery = instance_recovery(table, truth, {"T": ["s0", "s1"]}, families).set_index("task")
    assert recovery.loc["T", "n_sites"] == 3 and recovery.loc["T", "recall"] == 1 / 3
    assert recovery.loc["T", "recall_single"] == 1.0  # s0's lone site found, s1's two not
    assert recovery.loc["T", "n_instances"] == 2 and recovery.loc["T", "precision"] == 0.5
    assert recovery.loc["decoy:T", "recall"] == 1.0 and recovery.loc["decoy:T", "n_instances"] == 1
    path = write_instances(table, tmp_path / "instances.tsv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#id\tstart\tend\tstrand\tpattern\tmatch\tscore")
    assert lines[1].split("\t")[:4] == ["s0", "12", "20", "+"]  # BED-like: 0-based, end excl.
    pd.testing.assert_frame_equal(read_instances(path)[["id", "start", "end", "match"]],
                                  table[["id", "start", "end", "match"]])


@pytest.mark.slow
def test_instances_are_called_at_the_planted_sites():
    ohe, hyp, sites = planted()
    ids = [f"q{i}" for i in range(len(ohe))]
    table = call_instances(ohe, hyp, ids, "task", threshold=0.01)
    assert list(table.columns[:7]) == ["id", "start", "end", "strand", "pattern", "match",
                                       "score"]
    assert (table["start"] < table["end"]).all() and set(table["strand"]) <= {"+", "-"}
    truth = GroundTruth({"task": [CTCF, SPI1]}, None, sites)
    recovery = instance_recovery(table, truth, {"task": ids})
    assert (recovery["recall"] >= 0.8).all() and (recovery["precision"] >= 0.8).all(), recovery


def test_later_rounds_call_the_site_a_max_pooling_model_reads_only_once_the_first_is_gone():
    # The model reads only the leftmost intact CTCF site of a sequence (its relevance is the
    # site's log-odds; other positions get noise), as a max-pooling head would; every sequence
    # has two.
    rng = np.random.default_rng(0)
    ppm = jaspar_ppm(CTCF)
    w, n, length = len(ppm), 40, 120
    site, log_odds = ppm.argmax(1), np.abs(np.log2((ppm + 0.01) / 0.26)).astype(np.float32)
    seq = rng.integers(0, 4, (n, length))
    starts = np.stack([rng.integers(5, 40, n), rng.integers(65, 100, n)], axis=1)  # (n, 2)
    for i in range(n):
        for s in starts[i]:
            seq[i, s:s + w] = site
    ohe = np.eye(4, dtype=np.float32)[seq]
    noise = rng.normal(0, 0.05, (n, length, 4)).astype(np.float32)
    calls = []

    def leftmost_site_model(x):                                    # (M, L, 4) -> (M, L, 4)
        calls.append(len(x))
        hits = np.stack([(x[:, s:s + w].argmax(-1) == site).all(-1)
                         & (x[:, s:s + w].sum((1, 2)) == w)          # intact, no N
                         for s in range(length - w + 1)], axis=1)  # (M, L - w + 1)
        out = noise[:len(x)].copy()
        for m in np.flatnonzero(hits.any(1)):
            s = int(hits[m].argmax())
            out[m, s:s + w] += log_odds
        return out

    ids = [f"q{i}" for i in range(n)]
    db = {f"{CTCF}_CTCF": ppm, f"{SPI1}_Spi1": jaspar_ppm(SPI1)}
    sites = pd.DataFrame([[ids[i], "task", CTCF, "CTCF", s, s + w, "+"]
                          for i in range(n) for s in starts[i]],
                         columns=["id", "task", "motif_id", "motif_name", "start", "end",
                                  "strand"])
    truth = GroundTruth({"task": [CTCF]}, None, sites)
    families = {CTCF: ("zf",), f"{CTCF}_CTCF": ("zf",), f"{SPI1}_Spi1": ("ets",)}
    hyp = leftmost_site_model(ohe)
    once = call_instances(ohe, hyp, ids, "task", db=db, threshold=0.01)
    twice = call_instances(ohe, hyp, ids, "task", db=db, threshold=0.01,
                           attribute=leftmost_site_model, rounds=3)
    recall = {k: instance_recovery(t, truth, {"task": ids}, families)["recall"].iloc[0]
              for k, t in (("once", once), ("twice", twice))}
    assert recall["once"] <= 0.55 and recall["twice"] >= 0.95, recall
    later = twice[twice["round"] == 2]
    assert (later["start"] >= starts[[ids.index(i) for i in later["id"]], 1] - 3).all()
    assert set(twice["round"]) == {1, 2} and (once["round"] == 1).all()
    assert calls[1:] == [n, n]  # round 3 ran on the masked sequences, found nothing, stopped
    for _, group in twice.groupby("id"):                 # no instance overlaps another
        spans = group.sort_values("start")[["start", "end"]].to_numpy()
        assert (spans[1:, 0] >= spans[:-1, 1]).all()
    with pytest.raises(ValueError, match="needs `attribute`"):
        call_instances(ohe, hyp, ids, "task", db=db, rounds=2)


def test_attribution_settings_round_trip_and_a_broken_file_names_itself(tmp_path):
    from caduceus_lrp.attribute import AttributeConfig, read_settings, write_settings

    assert read_settings(tmp_path) is None
    cfg = AttributeConfig(split="all", composite="mambalrp", replicate_weights="auroc")
    write_settings(cfg, tmp_path)
    assert read_settings(tmp_path) == cfg
    (tmp_path / "settings.json").write_text("{not json")
    with pytest.raises(InputError, match=r"settings\.json: not JSON"):
        read_settings(tmp_path)


# ------------------------------------------------------------------------ figures, config
def test_marginalization_heatmap_is_titled_labelled_and_symmetric():
    table = marginalize(Linear(), [Motif("m", "sequence", "ACGT"),
                                   Motif("p", "pattern", "GGA", "MA0139.2_CTCF")],
                        random_onehot(6))
    fig = plot_marginalization(table)
    ax, bar = fig.axes
    low, high = ax.images[0].get_clim()
    assert low == -high and ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert bar.get_ylabel() == "mean logit change"
    assert "p (MA0139.2_CTCF)" in [t.get_text() for t in ax.get_yticklabels()]


@pytest.mark.parametrize("field, value, needle", [
    ("marginalize_background", "genome", "--marginalize-background"),
    ("n_backgrounds", 0, "--n-backgrounds"), ("instance_threshold", 2.0, "--instance-threshold"),
    ("instance_rounds", 0, "--instance-rounds"),
    ("variant_method", "magic", "--variant-method"), ("pairs", ["A"], "--pairs")])
def test_config_rejects_bad_values(field, value, needle):
    with pytest.raises(InputError, match=needle):
        AnalysisConfig(**{field: value})


# ------------------------------------------------------------------------ commands
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    return make_checkpoint(root / "best_model.pt", root / "cache", seq_len=200, n_synthetic=60)


@pytest.mark.parametrize("command, extra, needle", [
    ("marginalize", ["--marginalize-motifs", "NOT_A_MOTIF"], "motif 'NOT_A_MOTIF'"),
    ("spacing", ["--pairs", "CTCF"], "--pairs: an odd number"),
    ("instances", ["--attributions", "missing"], "missing: no such directory"),
    ("instances", ["--instance-rounds", "0"], "--instance-rounds: must be at least 1"),
    ("variants", ["--variants", "BAD"], "BAD: file not found"),
    ("variants", ["--variant-flank", "-1"], "--variant-flank: must be >= 0"),
    ("marginalize", ["--model", "nothing.pt"], "checkpoint not found")])
def test_bad_input_through_each_command_one_line_exit_2_nothing_written(
        checkpoint, tmp_path, capsys, monkeypatch, command, extra, needle):
    from caduceus_lrp.commands import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--model", str(checkpoint), "--modisco-dir", "out", "--plots-dir",
              "figs", *extra])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: ") and "\n" not in err
    assert needle in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "figs").exists()


def test_marginalize_command_writes_its_table_and_figure(checkpoint, tmp_path, capsys):
    from caduceus_lrp.commands import main

    code = main(["marginalize", "--model", str(checkpoint), "--modisco-dir", str(tmp_path),
                 "--plots-dir", str(tmp_path / "plots"), "--n-backgrounds", "3",
                 "--marginalize-motifs", "CTCF", "decoy", "ACGTNNACGT"])
    assert code == 0 and "HNF4A" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "analysis" / "marginalization.tsv", sep="\t")
    assert table.shape[0] == 3 * 6 and (table["n"] == 6).all()
    assert (tmp_path / "plots" / "marginalization.png").is_file()


def test_spacing_and_variants_commands_write_their_files(checkpoint, tmp_path, capsys):
    from caduceus_lrp.attribute import checkpoint_data
    from caduceus_lrp.commands import main
    from caduceus_lrp.data import load_dataset

    common = ["--model", str(checkpoint), "--modisco-dir", str(tmp_path), "--plots-dir",
              str(tmp_path / "plots")]
    assert main(["spacing", *common, "--spacing-backgrounds", "1", "--max-spacing", "1"]) == 0
    assert "TAL1::TCF3 + GATA1 on TAL1+GATA1" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "analysis" / "spacing_TAL1_TCF3_GATA1.tsv", sep="\t")
    assert table.shape[0] == 4 * 2 * 6 and set(table["orientation"]) == {"++", "+-", "-+", "--"}
    data = load_dataset(checkpoint_data(checkpoint))
    base = BASES[int(data.one_hot()[0, 5].argmax())]
    variants = tmp_path / "variants.tsv"
    variants.write_text(f"id\tposition\tref\talt\n{data.ids[0]}\t5\t{base}\t"
                        f"{BASES[(BASES.index(base) + 1) % 4]}\n")
    assert main(["variants", *common, "--variants", str(variants)]) == 0
    written = pd.read_csv(tmp_path / "analysis" / "variants.tsv", sep="\t")
    assert len(written) == 6 and written["attribution_delta"].notna().sum() == 1
    assert (tmp_path / "plots" / "variants.png").is_file()
    assert (tmp_path / "plots" / "spacing_TAL1_TCF3_GATA1.png").is_file()


@pytest.mark.slow
def test_instances_command_reads_the_attribute_steps_files(checkpoint, tmp_path, capsys):
    from caduceus_lrp.attribute import (AttributeConfig, checkpoint_data, write_attributions,
                                        write_settings)
    from caduceus_lrp.checkpoint import load_model
    from caduceus_lrp.commands import main
    from caduceus_lrp.data import load_dataset

    data = load_dataset(checkpoint_data(checkpoint))
    write_attributions(load_model(checkpoint), data, tmp_path / "attributions", "lrp",
                       progress=False)
    common = ["--model", str(checkpoint), "--modisco-dir", str(tmp_path), "--attributions",
              str(tmp_path / "attributions")]
    assert main(["instances", *common]) == 0  # no settings.json: one round, said so
    assert "records no attribution settings" in capsys.readouterr().out
    write_settings(AttributeConfig(split="all", ensemble=False), tmp_path / "attributions")
    assert main(["instances", *common]) == 0
    assert "records no attribution settings" not in capsys.readouterr().out
    table = read_instances(tmp_path / "instances.tsv")
    assert set(table["task"]) <= set(data.task_names) and set(table["round"]) <= {1, 2}
    assert (tmp_path / "analysis" / "instance_recovery.tsv").is_file()
