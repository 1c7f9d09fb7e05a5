"""TF_discovery/TF_DISCOVERY.ipynb runs headless on freshly generated motif outputs."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import CTCF, SPI1, planted_attributions

from caduceus_lrp.data import GroundTruth
from caduceus_lrp.motifs import ModiscoConfig, discover
from caduceus_lrp.motifs.meme import jaspar_meme

NOTEBOOK = Path(__file__).resolve().parents[1] / "TF_discovery" / "TF_DISCOVERY.ipynb"


@pytest.mark.slow
def test_notebook_executes_on_fresh_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("CADUCEUS_LRP_CACHE", str(tmp_path / "cache"))  # the notebook's JASPAR
    monkeypatch.setenv("CADUCEUS_LRP_OUT", str(tmp_path / "out"))
    ohe, hyp = planted_attributions([CTCF], 300, decoy=SPI1, seed=5)
    discover({"ctcf": (ohe, hyp)}, tmp_path / "out", ModiscoConfig(),
             GroundTruth({"ctcf": [CTCF]}, SPI1), db_meme=jaspar_meme())

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "all planted motifs recovered: yes; decoy found: no" in text
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "MA0139.2_CTCF" in html and "pos_patterns.pattern_0" in html
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # TF motifs, seqlet positions, the example track
