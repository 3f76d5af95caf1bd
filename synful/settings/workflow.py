"""How a workflow config's section travels to its command (one owner for both ends).

``synful predict``, ``extract``, ``evaluate``, ``synthesize``, ``download``, ``convert`` and
``masks`` take ``--settings``: a workflow config (a YAML file such as ``config/config.yaml``, or
the same inline) whose section named after the command (``predict:``, ``extract:``, ...) holds
the command's settings under their names
(``nms_radius: 40`` for ``--nms-radius 40``), checked by the same models that make the flags
(:func:`synful.settings.fields.apply_settings`). The keys below are the workflow's own: a
command skips them, and the workflow leaves them out of what it hands each job
(:func:`command_settings`), so that Snakemake reruns a job when one of its settings changes,
never for a workflow-only key.

Imports only the standard library: ``rules/common.smk`` imports it where Snakemake runs.
"""

from __future__ import annotations

#: each section's keys that are not settings of its command, and what they are
WORKFLOW_KEYS = {
    # the extraction runs (each job gets its grid point as mode, threshold, score, nms_radius);
    # the threads a job asks for (the job hands the threads it got as --threads)
    "extract": ("grid", "threads"),
    # the threads a job asks for (handed over as --threads)
    "predict": ("threads",),
    # the samples scored, the held-out test sets
    "evaluate": ("samples", "test"),
    # a sample's part of the config: samples.NAME.synthetic, samples.NAME.masks, the download
    # section (with a sample's sha256 and labels), a sample's voxel_size with chunks
    "synthesize": (),
    "download": (),
    "convert": (),
    "masks": (),
}


def plain(value):
    """``value`` as plain Python data (numpy scalars, e.g. a Paramspace's, become numbers)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        return value.item()
    return value


def command_settings(section: str, values: dict, **run) -> dict:
    """A workflow config section as its command's settings: without the workflow's own keys
    (:data:`WORKFLOW_KEYS`), with this job's values ``run`` (e.g. its grid point)."""
    kept = {k: v for k, v in values.items() if k not in WORKFLOW_KEYS[section]}
    return plain(kept | run)
