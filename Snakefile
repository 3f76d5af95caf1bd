"""Synful: synaptic partner detection in 3D EM, from CREMI HDF5 to scored synapse tables."""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/masks.smk"


rule all:
    default_target: True
    input:
        data_targets(),


rule data:
    input:
        data_targets(),
