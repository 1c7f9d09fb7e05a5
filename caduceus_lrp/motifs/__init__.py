"""From attributions to motifs: TF-MoDISco (modisco-lite), MEME files, Tomtom against JASPAR
(memelite, pyjaspar), recovery of known motifs, figures, and `discover`, which runs them all.

`caduceus-lrp motifs` (or `python -m caduceus_lrp.motifs`) runs `discover` on the attribution
files of the attribute step. Modules: `modisco` (the TF-MoDISco wrapper), `meme` (MEME files,
JASPAR), `tomtom`, `recovery`, `plots`, `discover`, `agreement` (replicate support of patterns),
`results` (loaders for the notebook).
"""
from .discover import STACKED, discover, pattern_report, pattern_rows
from .modisco import (ModiscoConfig, Pattern, check_attributions, load_patterns, modisco_report,
                      patterns_to_meme, peak_starts, peak_windows, run_modisco)
from .recovery import combine_recoveries, motif_recovery, recovery_report, recovery_table
from .results import (REPLICATES_NAME, MotifResults, load_attributions, load_replicates,
                      load_results, seqlet_table, task_table)

__all__ = ["STACKED", "discover", "pattern_report", "pattern_rows", "ModiscoConfig", "Pattern",
           "check_attributions", "load_patterns", "modisco_report", "patterns_to_meme",
           "peak_starts", "peak_windows", "run_modisco", "combine_recoveries", "motif_recovery",
           "recovery_report", "recovery_table", "MotifResults", "load_attributions",
           "load_replicates", "REPLICATES_NAME", "load_results", "seqlet_table", "task_table"]
