rule predict:
    input:
        checkpoint=network_checkpoint,
        store=sample_raw,
        masks=predict_masks,
    output:
        predictions=directory("results/predict/{setup}/{iteration}/{sample}.zarr"),
    log:
        "logs/predict/{setup}/{iteration}/{sample}.log",
    benchmark:
        "benchmarks_out/predict/{setup}/{iteration}/{sample}.tsv"
    conda:
        "../envs/synful.yaml"
    threads: config["predict"]["threads"]
    resources:
        gpu=1,
    params:
        roi=predict_roi,
        args=predict_args,
    script:
        "../workflow_scripts/predict.py"
