rule masks:
    input:
        store="results/samples/{sample}.zarr",
        synapses="results/samples/{sample}.parquet",
        mask_volumes=mask_volume_files,
    output:
        summary="results/samples/{sample}.masks.json",
    log:
        "logs/masks/{sample}.log",
    benchmark:
        "benchmarks_out/masks/{sample}.tsv"
    conda:
        "../envs/synful.yaml"
    params:
        settings=masks_settings,
    script:
        "../workflow_scripts/masks.py"
