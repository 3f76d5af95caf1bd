rule evaluate:
    input:
        unpack(model_predictions),
        synapses=f"results/extract/{RUN}/{{sample}}.parquet",
        store="results/samples/{sample}.zarr",
        gt="results/samples/{sample}.parquet",
        masks="results/samples/{sample}.masks.json",
    output:
        metrics=f"results/evaluate/{RUN}/seg~{{seg}}/{{sample}}.json",
        sweep=f"results/evaluate/{RUN}/seg~{{seg}}/{{sample}}.sweep.csv",
        plot=f"results/evaluate/{RUN}/seg~{{seg}}/{{sample}}.pr.png",
        # the errors by cause beside the metrics (X.json -> X.errors.csv, as
        # synful.evaluate.errors.errors_path)
        errors=f"results/evaluate/{RUN}/seg~{{seg}}/{{sample}}.errors.csv",
    log:
        f"logs/evaluate/{RUN}/seg~{{seg}}/{{sample}}.log",
    benchmark:
        f"benchmarks_out/evaluate/{RUN}/seg~{{seg}}/{{sample}}.tsv"
    conda:
        "../envs/synful.yaml"
    params:
        settings=evaluate_settings,
    script:
        "../workflow_scripts/evaluate.py"


rule evaluate_all:
    input:
        metrics=[run["metrics"] for run in evaluation_runs()],
        test_metrics=[run["metrics"] for run in test_runs()],
        errors=evaluation_errors(),
    output:
        **test_table(),
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
    benchmark:
        "benchmarks_out/evaluate_all.tsv"
    conda:
        "../envs/synful.yaml"
    params:
        runs=evaluation_runs(),
        test_runs=test_runs(),
    script:
        "../workflow_scripts/evaluate_all.py"
