# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

# one evaluation per seg variant: "with" (--filter-same-seg, the paper's "with seg"), "without"
outputs = zip(snakemake.params.seg, snakemake.output.metrics, snakemake.output.sweep, snakemake.output.plot)
for i, (seg, metrics, sweep, plot) in enumerate(outputs):
    run_synful(
        snakemake,
        "evaluate",
        "--pred",
        snakemake.input.synapses,
        "--gt",
        snakemake.input.store,
        "--mask",
        f"{snakemake.input.store}/masks/validation",
        "--out",
        metrics,
        "--sweep-csv",
        sweep,
        "--plot",
        plot,
        ["--filter-same-seg"] if seg == "with" else [],
        snakemake.params.args,
        append=i > 0,
    )
