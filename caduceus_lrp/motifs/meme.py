"""MEME motif files: PPMs (w, 4) written and read, and JASPAR matrices as a MEME file.

Shapes: w motif width; matrices are (w, 4) in A, C, G, T order here and (4, w) in memelite.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io_utils import atomic_path
from ..resources import cache_dir
from ..sequence import BASES

__all__ = ["write_meme", "read_motifs", "jaspar_meme", "jaspar_families"]


def write_meme(path, motifs, nsites=None):
    """Write {name: PPM (w, 4)} as a MEME motif file (atomically); names must be one token."""
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
             "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for name, ppm in motifs.items():
        if len(name.split()) != 1:
            raise ValueError(f"MEME motif names must be one token, got {name!r}")
        n = 1 if nsites is None else int(nsites[name])
        lines += [f"MOTIF {name}",
                  f"letter-probability matrix: alength= 4 w= {len(ppm)} nsites= {n} E= 0"]
        lines += [" ".join(f"{x:.6f}" for x in row) for row in ppm]
        lines.append("")
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return Path(path)


def read_motifs(path):
    """{motif id (first token of the MOTIF line): PPM (w, 4)} from a MEME file."""
    from memelite.io import read_meme

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such MEME file")
    return {name.split()[0]: pwm.T for name, pwm in read_meme(str(path)).items()}


def jaspar_meme(path=None, release="JASPAR2024", collection="CORE", tax_group="vertebrates"):
    """The latest version of each JASPAR matrix of a release, collection and taxonomic group
    as a MEME file with one-token names (`MA0139.2_CTCF`); returns its path.

    Cached: an existing file at `path` (default `$CADUCEUS_LRP_CACHE` or
    ~/.cache/caduceus_lrp, named after the selection) is returned as it is.
    """
    path = Path(path) if path is not None else \
        cache_dir() / f"{release}_{collection}_{tax_group}.meme"
    if path.is_file():
        return path
    from pyjaspar import jaspardb

    matrices = jaspardb(release=release).fetch_motifs(
        collection=collection, tax_group=[tax_group], all_versions=False)
    if not matrices:
        raise InputError(f"JASPAR {release} has no {collection} matrices for tax group "
                         f"{tax_group!r}")
    motifs, nsites = {}, {}
    for m in matrices:
        counts = np.array([m.counts[b] for b in BASES], dtype=float).T  # (w, 4)
        name = "_".join(f"{m.matrix_id}_{m.name}".split())
        motifs[name] = counts / counts.sum(axis=1, keepdims=True)
        nsites[name] = round(counts[0].sum())
    return write_meme(path, motifs, nsites)


def jaspar_families(ids, release="JASPAR2024"):
    """{JASPAR matrix ID (e.g. MA0035.5 or MA0035.5_GATA1): its TF families, a tuple (empty
    for an ID the release does not hold)}, from pyjaspar (e.g. GATA1 and GATA2 are both
    C4-GATA-related)."""
    from pyjaspar import jaspardb

    db = jaspardb(release=release)
    out = {}
    for motif_id in ids:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyjaspar warns about an unknown ID, then gives None
            motif = db.fetch_motif_by_id(motif_id.split("_")[0])
        out[motif_id] = tuple(motif.tf_family) if motif is not None else ()
    return out
