# ruff: noqa: F821  (`snakemake` is provided by Snakemake's script directive)
from _synful import run_synful

# one evaluation per seg variant ("with": filter_same_seg, the paper's "with seg"; "without"),
# each with its settings; the errors by cause at every swept threshold (evaluate_all picks the
# one best over all samples)
outputs = zip(
    snakemake.params.settings,
    snakemake.output.metrics,
    snakemake.output.sweep,
    snakemake.output.plot,
    snakemake.output.errors,
)
# a (mask, vectors) pair of networks: the partner vectors come from the vector network's store
vectors = ["--vectors", snakemake.input.vectors] if "vectors" in snakemake.input.keys() else []
for i, (settings, metrics, sweep, plot, errors) in enumerate(outputs):
    run_synful(
        snakemake,
        "evaluate",
        "--pred",
        snakemake.input.synapses,
        "--gt",
        snakemake.input.store,
        "--mask",
        "masks/validation",
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
        settings=settings,
        append=i > 0,
    )
