rule synthesize:
    output:
        hdf="resources/synthetic/{sample}.hdf",
    log:
        "logs/synthesize/{sample}.log",
    benchmark:
        "benchmarks_out/synthesize/{sample}.tsv"
    conda:
        "../envs/synful.yaml"
    params:
        settings=synthesize_settings,
    script:
        "../workflow_scripts/synthesize.py"


rule download:
    output:
        hdf="resources/download/{sample}.hdf",
    log:
        "logs/download/{sample}.log",
    benchmark:
        "benchmarks_out/download/{sample}.tsv"
    conda:
        "../envs/synful.yaml"
    params:
        url=lambda wildcards: SAMPLES[wildcards.sample]["url"],
        settings=download_settings,
    script:
        "../workflow_scripts/download.py"


rule download_archive:
    output:
        archive="resources/archives/{archive}",
    log:
        "logs/download_archive/{archive}.log",
    benchmark:
        "benchmarks_out/download_archive/{archive}.tsv"
    conda:
        "../envs/synful.yaml"
    params:
        url=lambda wildcards: ARCHIVES[wildcards.archive]["url"],
        settings=archive_download_settings,
    script:
        "../workflow_scripts/download.py"


rule unpack:
    input:
        archive=unpack_archive,
    output:
        member="resources/archives/{stem}/{member}",
    log:
        "logs/unpack/{stem}/{member}.log",
    benchmark:
        "benchmarks_out/unpack/{stem}/{member}.tsv"
    conda:
        "../envs/synful.yaml"
    script:
        "../workflow_scripts/unpack.py"


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
        settings=convert_settings,
    script:
        "../workflow_scripts/convert.py"
