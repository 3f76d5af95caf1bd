"""Synful: synaptic partner detection in 3D EM, from CREMI HDF5 to scored synapse tables."""

from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml (the demo) unless config files are given with --configfile: those replace
# it rather than extend it, so `--configfile config/cremi.yaml` runs the CREMI samples only
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/masks.smk"
include: "rules/train.smk"
include: "rules/predict.smk"
include: "rules/extract.smk"
include: "rules/evaluate.smk"


report: "report/workflow.rst"


localrules:
    all,
    data,
    train_all,
    predict_all,
    infer,
    evaluate_all,


rule all:
    default_target: True
    input:
        rules.evaluate_all.output,
        data_targets(),
        inferred_tables(),


rule data:
    input:
        data_targets(),


rule train_all:
    input:
        trained_checkpoints(),


rule predict_all:
    input:
        prediction_stores(),


rule infer:
    input:
        inferred_tables(),
