"""Write a synthetic sample (and its preview) to disk, turning OS failures into SynfulError."""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_output
from ..errors import SynfulError
from ..io.cremi import CremiSample, write_cremi
from ..outputs import FILE, SYNTHETIC_SAMPLE, claim, mark_hdf5, output
from .sample import synthesize_sample


def check_writable(path: str | os.PathLike) -> Path:
    """Create the parent directory of ``path`` and check that a file can be written there.

    Raises:
        SynfulError: ``path`` is a directory, or its directory cannot be created or written.
    """
    path = Path(path)
    if path.is_dir():
        raise SynfulError(path, "is a directory, expected an output file path")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise SynfulError(
            path, f"cannot create the output directory: {blocking} is not a directory"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SynfulError(
            path, f"cannot create the output directory ({exc.strerror or exc})"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise SynfulError(path, "the output directory is not writable")
    return path


def write_synthetic(
    out: str | os.PathLike,
    seed: int = 0,
    shape=(32, 320, 320),
    padding=(8, 96, 96),
    missing_sections: float = 0.0,
    misaligned_sections: float = 0.0,
    preview: str | os.PathLike | None = None,
) -> CremiSample:
    """Synthesize a sample (see :func:`synthesize_sample`) and write it as a CREMI HDF5 file,
    atomically, plus an optional PNG preview. Returns the sample.

    The file is marked as synful's synthetic sample; an existing ``out`` is replaced only
    when it is one (and an existing ``preview`` only when it is a regular file).

    Raises:
        SynfulError: bad parameters, an output cannot be written, an existing output is not
            synful's, or another run writes the same output.
    """
    outputs = [output(out, SYNTHETIC_SAMPLE)]
    if preview is not None:
        outputs.append(output(preview, FILE))
    with claim(outputs):
        return _write_synthetic(
            out, seed, shape, padding, missing_sections, misaligned_sections, preview
        )


def _write_synthetic(
    out, seed, shape, padding, missing_sections, misaligned_sections, preview
) -> CremiSample:
    out = check_writable(out)
    if preview is not None:
        preview = check_writable(preview)
    sample = synthesize_sample(
        seed=seed,
        shape=shape,
        padding=padding,
        missing_sections=missing_sections,
        misaligned_sections=misaligned_sections,
    )
    try:
        with atomic_output(out, kind=SYNTHETIC_SAMPLE) as tmp:
            write_cremi(tmp, sample)
            mark_hdf5(tmp, SYNTHETIC_SAMPLE)
        if preview is not None:
            from .preview import write_preview  # zarr and funlib.persistence: only when asked

            write_preview(sample, preview)
    except OSError as exc:
        raise SynfulError(out, f"cannot write ({exc.strerror or exc})") from None
    return sample
