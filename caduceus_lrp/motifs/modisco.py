"""TF-MoDISco (modisco-lite) used as its authors intend: settings, input checks, the peak windows
it sees, its patterns read back from the h5 file, their MEME files, and its HTML report.

Shapes: N sequences, L length, w motif width, s seqlets. One-hot sequences and hypothetical
attributions are (N, L, 4) in A, C, G, T order (`modisco motifs` files hold them as (N, 4, L));
the contribution of a base is one-hot * hypothetical. Motif matrices are (w, 4) here and (4, w)
in memelite. A pattern is named as modisco's report names it: `pos_patterns.pattern_0`.
docs/motifs.md has the layouts and the settings.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..cli import option
from ..errors import InputError
from ..io_utils import atomic_path
from .meme import write_meme

__all__ = ["METACLUSTERS", "ModiscoConfig", "check_attributions", "peak_starts", "peak_windows",
           "run_modisco", "Pattern", "load_patterns", "patterns_to_meme", "modisco_report"]

METACLUSTERS = ("pos_patterns", "neg_patterns")


# ---------------------------------------------------------------------------- TF-MoDISco

@dataclass(frozen=True)
class ModiscoConfig:
    """Motif discovery settings. Fields marked `modisco` are passed to modisco-lite's
    `TFMoDISco` under their own names; defaults follow `modisco motifs` (the CLI), not the
    Python API (FDR 0.2 and 50 Leiden runs there: 168 s against 6.5 s for the same patterns
    on 2,000 x 200 bp, docs/motifs.md)."""

    window: int = option(200, "width (bp, even) of the window around each sequence's "
                              "attribution peak that TF-MoDISco sees")
    smooth: int = option(21, "width (bp) of the box filter on |contribution| that finds the "
                             "peak")
    max_seqlets_per_metacluster: int = option(
        20000, "most seqlets kept per sign (positive, negative)", modisco=True)
    sliding_window_size: int = option(20, "width (bp) of the seqlet core windows", modisco=True)
    flank_size: int = option(5, "bases added on each side of a seqlet core", modisco=True)
    target_seqlet_fdr: float = option(0.05, "false discovery rate of seqlet calling",
                                      modisco=True)
    n_leiden_runs: int = option(2, "Leiden clusterings with different seeds (best kept)",
                                modisco=True)
    min_metacluster_size: int = option(
        100, "a sign with this many seqlets or fewer gives no patterns", modisco=True)
    final_min_cluster_size: int = option(20, "fewest seqlets of a reported pattern",
                                         modisco=True)
    trim_to_window_size: int = option(30, "width (bp) patterns are trimmed to while merging",
                                      modisco=True)
    initial_flank_to_add: int = option(10, "flank (bp) added to patterns before merging",
                                       modisco=True)
    final_flank_to_add: int = option(0, "flank (bp) added to the final patterns", modisco=True)
    trim_threshold: float = option(0.3, "MEME files and Tomtom keep the positions of a pattern "
                                        "where sum|CWM| >= this x its maximum")
    n_matches: int = option(5, "best Tomtom matches kept per pattern")
    q_threshold: float = option(0.05, "a Tomtom match is significant when its q-value is below "
                                      "this")
    max_rank: int = option(1, "a planted motif is recovered when it is among this many best "
                              "significant matches of a pattern (1: its top match)")
    modisco_report: bool = option(True, "write modisco-lite's own HTML report (report/; about a "
                                        "minute for a dozen patterns)")

    def __post_init__(self):
        if self.window <= 0 or self.window % 2:
            raise InputError(f"window: must be even and positive, got {self.window}")
        if not 0 < self.trim_threshold <= 1:
            raise InputError(f"trim_threshold: must be in (0, 1], got {self.trim_threshold}")
        for name in ("smooth", "sliding_window_size", "n_leiden_runs", "n_matches",
                     "max_seqlets_per_metacluster", "max_rank"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("target_seqlet_fdr", "q_threshold"):
            if not 0 < getattr(self, name) < 1:
                raise InputError(f"{name}: must be in (0, 1), got {getattr(self, name)}")

    def modisco_kwargs(self):
        """The keyword arguments of `modiscolite.tfmodisco.TFMoDISco` this config sets."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata.get("modisco")}


def check_attributions(ohe, hyp, name, min_sequences=20):
    """Check one-hot sequences and hypothetical attributions, both (N, L, 4), before modisco;
    return them as float32. Bad input raises InputError naming `name` and what is wrong."""
    ohe, hyp = np.asarray(ohe), np.asarray(hyp)
    for what, x in (("one-hot", ohe), ("attributions", hyp)):
        if x.ndim != 3 or x.shape[2] != 4:
            hint = " (it looks like (N, 4, L): transpose it)" \
                if x.ndim == 3 and x.shape[1] == 4 else ""
            raise InputError(f"{name}: {what} must have shape (N, L, 4), got "
                             f"{x.shape}{hint}")
    if ohe.shape != hyp.shape:
        raise InputError(f"{name}: one-hot {ohe.shape} and attributions {hyp.shape} differ "
                         "in shape")
    bad = ~(np.isin(ohe, (0, 1)).all(axis=2) & (ohe.sum(axis=2) <= 1))  # (N, L)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(f"{name}: sequence {i} position {j} is not one-hot: {ohe[i, j]}")
    finite = np.isfinite(hyp).all(axis=2)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        raise InputError(f"{name}: attributions of sequence {i} at position {j} are not "
                         f"finite: {hyp[i, j]}")
    if len(ohe) < min_sequences:
        raise InputError(f"{name}: {len(ohe)} sequences are too few for TF-MoDISco "
                         f"(at least {min_sequences})")
    if not (ohe * hyp).any():
        raise InputError(f"{name}: all attributions of the observed bases are zero")
    return ohe.astype(np.float32), hyp.astype(np.float32)


def peak_starts(ohe, hyp, width=200, smooth=21):
    """Start (N,) of the `width`-bp window centred on each sequence's attribution peak: the
    maximum of |contribution| (N, L) summed over a `smooth`-bp box (the middle position when
    several tie), clipped to the sequence."""
    contrib = np.abs((ohe * hyp).sum(axis=2))  # (N, L)
    length = contrib.shape[1]
    if width > length:
        raise InputError(f"window of {width} bp is longer than the sequences ({length} bp)")
    csum = np.pad(np.cumsum(contrib, axis=1), ((0, 0), (1, 0)))  # (N, L + 1)
    lo = np.clip(np.arange(length) - smooth // 2, 0, length)
    hi = np.clip(np.arange(length) + smooth - smooth // 2, 0, length)
    smoothed = csum[:, hi] - csum[:, lo]  # (N, L)
    first = np.argmax(smoothed, axis=1)
    last = length - 1 - np.argmax(smoothed[:, ::-1], axis=1)
    peak = (first + last) // 2  # (N,) the middle of a plateau of maxima
    return np.clip(peak - width // 2, 0, length - width)


def peak_windows(ohe, hyp, width=200, smooth=21):
    """Windows (N, width, 4) of one-hot and attributions around each sequence's attribution
    peak (`peak_starts`); the whole sequences when L == width."""
    starts = peak_starts(ohe, hyp, width, smooth)
    take = starts[:, None] + np.arange(width)  # (N, width)
    rows = np.arange(len(ohe))[:, None]
    return ohe[rows, take], hyp[rows, take]


def run_modisco(ohe, hyp, out_h5, cfg=None, name=None):
    """TF-MoDISco (modisco-lite's Python API) on one-hot and hypothetical attributions
    (N, L, 4); writes `out_h5` (modiscolite.io.save_hdf5, window_size L) and returns
    (pos_patterns, neg_patterns), each a list or None. No pattern at all raises InputError."""
    from modiscolite.io import save_hdf5
    from modiscolite.tfmodisco import TFMoDISco

    cfg = cfg or ModiscoConfig()
    name = name or str(out_h5)
    ohe, hyp = check_attributions(ohe, hyp, name)
    pos, neg = TFMoDISco(ohe, hyp, **cfg.modisco_kwargs())
    if not pos and not neg:
        raise InputError(
            f"{name}: TF-MoDISco found no pattern in {len(ohe)} sequences x {ohe.shape[1]} bp: "
            f"too few seqlets (a sign needs more than {cfg.min_metacluster_size}, a pattern "
            f"{cfg.final_min_cluster_size}); give more sequences or raise target_seqlet_fdr")
    with atomic_path(out_h5) as tmp:
        save_hdf5(str(tmp), pos, neg, window_size=ohe.shape[1])
    return pos, neg


@dataclass
class Pattern:
    """A TF-MoDISco pattern read from its h5 file: matrices (w, 4) and seqlets (s,)."""

    name: str              # e.g. pos_patterns.pattern_0
    ppm: np.ndarray        # (w, 4) base frequencies of the aligned seqlets
    cwm: np.ndarray        # (w, 4) mean contribution
    hcwm: np.ndarray       # (w, 4) mean hypothetical contribution
    example_idx: np.ndarray  # (s,) row of the modisco input each seqlet is in
    start: np.ndarray      # (s,) seqlet start in that row
    end: np.ndarray        # (s,) seqlet end (exclusive)
    is_revcomp: np.ndarray  # (s,) seqlet aligned on the reverse strand

    @property
    def n_seqlets(self):
        return len(self.start)

    def trim(self, threshold=0.3):
        """Slice of the positions from the first to the last where sum|CWM| >= threshold x
        its maximum."""
        score = np.abs(self.cwm).sum(axis=1)  # (w,)
        keep = np.flatnonzero(score >= threshold * score.max())
        return slice(keep[0], keep[-1] + 1)

    def trimmed_ppm(self, threshold=0.3):
        """The PPM (w', 4) over `trim(threshold)`, each row normalised to sum 1."""
        ppm = self.ppm[self.trim(threshold)]
        return ppm / ppm.sum(axis=1, keepdims=True)


def load_patterns(h5_path):
    """The patterns of a modisco h5 file, positive then negative, in pattern order."""
    h5_path = Path(h5_path)
    if not h5_path.is_file():
        raise InputError(f"{h5_path}: no such modisco h5 file")
    patterns = []
    with h5py.File(h5_path, "r") as f:
        for group in METACLUSTERS:
            items = f[group].items() if group in f else []
            for key, g in sorted(items, key=lambda kv: int(kv[0].split("_")[-1])):
                s = g["seqlets"]
                patterns.append(Pattern(
                    f"{group}.{key}", g["sequence"][:], g["contrib_scores"][:],
                    g["hypothetical_contribs"][:], s["example_idx"][:], s["start"][:],
                    s["end"][:], s["is_revcomp"][:].astype(bool)))
    return patterns


def patterns_to_meme(h5_path, pos_meme, neg_meme, trim=0.3):
    """Write the positive and negative patterns' PPMs, trimmed to the positions where
    sum|CWM| >= trim x max, as two MEME files (a file with no motif when a sign has none).
    Returns {pattern name: trimmed PPM (w, 4)}."""
    patterns = load_patterns(h5_path)
    out = {}
    for group, path in zip(METACLUSTERS, (pos_meme, neg_meme), strict=True):
        chosen = [p for p in patterns if p.name.startswith(group + ".")]
        motifs = {p.name: p.trimmed_ppm(trim) for p in chosen}
        write_meme(path, motifs, {p.name: p.n_seqlets for p in chosen})
        out.update(motifs)
    return out


def modisco_report(h5_path, out_dir, db_meme):
    """`modisco report -i h5 -o out_dir -m db_meme -l` (Tomtom by memelite); the report is
    built in a temporary folder that replaces `out_dir` once `report.html` exists and names
    every pattern. Returns the path of report.html."""
    out_dir = Path(out_dir)
    names = [p.name for p in load_patterns(h5_path)]
    exe = Path(sys.executable).with_name("modisco")
    exe = str(exe) if exe.is_file() else shutil.which("modisco")
    if exe is None:
        raise RuntimeError("the `modisco` command of modisco-lite is not on PATH")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        cmd = [exe, "report", "-i", str(h5_path), "-o", str(tmp), "-m", str(db_meme), "-l"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as err:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.stderr[-2000:]}") from None
        html = tmp / "report.html"
        text = html.read_text() if html.is_file() else ""
        missing = [n for n in names if n not in text]
        if not text or missing:
            raise RuntimeError(f"{html}: the modisco report is missing patterns {missing}")
        old = out_dir.with_name(tmp.name + ".old")
        if out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / "report.html"


