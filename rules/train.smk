# One job per configured checkpoint; every job of a setup trains in results/train/{setup}/ and
# continues the previous configured checkpoint (`synful train --from PREVIOUS|scratch`). It
# resumes only from a checkpoint of that directory that has the current training recipe (the
# setup keys that change the weights, the samples by content) and was trained from PREVIOUS
# (each checkpoint records the files it descends from); the other checkpoints after PREVIOUS
# are stale and removed. So whatever makes Snakemake rerun the job (a changed setup, sample,
# table, mask or previous checkpoint, changed params or code, a forced rerun), it never resumes
# from an undeclared checkpoint of an old recipe or an old previous checkpoint, and it still
# resumes from its own intermediate checkpoints after a kill (docs/training.md, "Resume").
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
