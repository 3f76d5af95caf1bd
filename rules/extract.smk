rule extract:
    input:
        unpack(model_predictions),
        store=sample_store,
    output:
        synapses=f"results/extract/{RUN}/{{sample}}.parquet",
    log:
        f"logs/extract/{RUN}/{{sample}}.log",
    benchmark:
        f"benchmarks_out/extract/{RUN}/{{sample}}.tsv"
    conda:
        "../envs/synful.yaml"
    threads: config["extract"]["threads"]
    params:
        settings=extract_settings,
    script:
        "../workflow_scripts/extract.py"
