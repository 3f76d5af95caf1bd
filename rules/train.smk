rule train:
    input:
        unpack(training_inputs),
        setup=setup_file,
        previous=previous_checkpoint,
    output:
        checkpoint="results/train/{setup}/checkpoint_{iteration}.pt",
    log:
        "logs/train/{setup}/checkpoint_{iteration}.log",
    benchmark:
        "benchmarks_out/train/{setup}/checkpoint_{iteration}.tsv"
    conda:
        "../envs/synful.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
    params:
        device=config["train"]["device"],
    script:
        "../workflow_scripts/train.py"
