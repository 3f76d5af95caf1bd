import re


def errors_csv(metrics):
    """The per-error table beside a metrics JSON: X.json -> X.errors.csv (as
    synful.evaluate.errors.errors_path, which summary.py uses; not imported here, so that a
    Snakemake without synful's dependencies parses the workflow)."""
    return re.sub(r"\.json$", ".errors.csv", metrics)


def extraction_threshold(wildcards):
    """The run's extraction threshold (grid point), or [] for synful extract's default."""
    threshold = EXTRACTION.instance(wildcards).get("threshold")
    return [] if threshold is None else ["--extraction-threshold", threshold]


rule evaluate:
    input:
        unpack(model_predictions),
        synapses=f"results/extract/{RUN}/{{sample}}.parquet",
        store="results/samples/{sample}.zarr",
        gt="results/samples/{sample}.parquet",
        masks="results/samples/{sample}.masks.json",
    output:
        metrics=evaluation_outputs("metrics"),
        sweep=evaluation_outputs("sweep"),
        plot=evaluation_outputs("plot"),
        errors=[errors_csv(path) for path in evaluation_outputs("metrics")],
    log:
        f"logs/evaluate/{RUN}/{{sample}}.log",
    conda:
        "../envs/synful.yaml"
    params:
        seg=SEG_VARIANTS,
        args=evaluate_args,
        extraction_threshold=extraction_threshold,
    script:
        "../workflow_scripts/evaluate.py"


rule evaluate_all:
    input:
        metrics=[run["metrics"] for run in evaluation_runs()],
        errors=[errors_csv(run["metrics"]) for run in evaluation_runs()],
    output:
        summary=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
        ),
        fscore_plot=report(
            "results/plots/fscore_by_iteration.png",
            caption="../report/fscore_by_iteration.rst",
            category="Summary",
        ),
        pr_plot=report(
            "results/plots/precision_recall.png",
            caption="../report/precision_recall.rst",
            category="Summary",
        ),
        errors=report(
            "results/errors.csv",
            caption="../report/errors.rst",
            category="Summary",
        ),
        error_pairs="results/error_pairs.csv",
    log:
        "logs/evaluate_all.log",
    conda:
        "../envs/synful.yaml"
    params:
        runs=evaluation_runs(),
    script:
        "../workflow_scripts/evaluate_all.py"
