rule synthesize:
    output:
        hdf="resources/synthetic/{sample}.hdf",
    log:
        "logs/synthesize/{sample}.log",
    conda:
        "../envs/synful.yaml"
    params:
        args=synthesize_args,
    script:
        "../workflow_scripts/synthesize.py"


rule download:
    output:
        hdf="resources/download/{sample}.hdf",
    log:
        "logs/download/{sample}.log",
    conda:
        "../envs/synful.yaml"
    params:
        args=download_args,
    script:
        "../workflow_scripts/download.py"


rule convert:
    input:
        hdf=sample_hdf,
    output:
        store=directory("results/samples/{sample}.zarr"),
        synapses="results/samples/{sample}.parquet",
    log:
        "logs/convert/{sample}.log",
    benchmark:
        "benchmarks_out/convert/{sample}.tsv"
    conda:
        "../envs/synful.yaml"
    params:
        args=convert_args,
    script:
        "../workflow_scripts/convert.py"
