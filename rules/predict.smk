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
        gpu=0 if config["predict"]["cluster"] else 1,
    params:
        settings=predict_settings,
    # with predict.cluster, the job runs the blocks on a dask-jobqueue cluster it starts
    # (GPU workers in batch jobs of their own) and itself needs no GPU
    message:
        predict_cluster_message()
    script:
        "../workflow_scripts/predict.py"
