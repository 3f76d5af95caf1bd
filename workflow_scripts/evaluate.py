# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

# one evaluation per seg variant: "with" (--filter-same-seg, the paper's "with seg"), "without";
# the errors by cause at every swept threshold (evaluate_all picks the one best over all samples)
outputs = zip(
    snakemake.params.seg,
    snakemake.output.metrics,
    snakemake.output.sweep,
    snakemake.output.plot,
    snakemake.output.errors,
)
# a (mask, vectors) pair of networks: the partner vectors come from the vector network's store
vectors = ["--vectors", snakemake.input.vectors] if "vectors" in snakemake.input.keys() else []
for i, (seg, metrics, sweep, plot, errors) in enumerate(outputs):
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
        "--errors-csv",
        errors,
        "--errors-at",
        "sweep",
        "--predictions",
        snakemake.input.predictions,
        vectors,
        snakemake.params.extraction_threshold,
        ["--filter-same-seg"] if seg == "with" else [],
        snakemake.params.args,
        append=i > 0,
    )
