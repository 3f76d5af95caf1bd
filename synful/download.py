"""Download a CREMI HDF5 file: streamed, resumable, checked, atomic.

The transfer goes to ``<out>.part``; an existing ``.part`` is resumed with an HTTP Range
request (a server that ignores the range restarts it). A connection cut off midway is resumed
up to ``retries`` times. The complete file is checked (sha256 when given, then the CREMI
layout) and only then renamed to ``out``.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .errors import SynfulError
from .io.cremi import VOLUME_PATHS, CremiFile

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


def part_path(out: str | os.PathLike) -> Path:
    """Where a download of ``out`` in progress is kept."""
    out = Path(out)
    return out.with_name(out.name + ".part")


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_cremi(path: str | os.PathLike, require_labels: bool = False, name=None) -> None:
    """Check that ``path`` is a CREMI HDF5 file with ``volumes/raw`` (and labels, annotations).

    Raises:
        SynfulError: naming ``name`` (default: ``path``) and the missing part.
    """
    name = name or path
    try:
        with CremiFile(path) as f:
            if not f.has_volume("raw"):
                raise SynfulError(name, f"missing dataset {VOLUME_PATHS['raw']}")
            if require_labels:
                if not f.has_volume("neuron_ids"):
                    raise SynfulError(name, f"missing dataset {VOLUME_PATHS['neuron_ids']}")
                if not f.has_annotations():
                    raise SynfulError(name, "missing group annotations")
                f.read_annotations()
    except SynfulError as exc:
        raise SynfulError(name, exc.problem) from None


def _total_from_content_range(value: str | None) -> int | None:
    match = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", value or "")
    return int(match.group(1)) if match else None


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Fetch ``url`` into ``part``, resuming from its size; raises on a cut connection."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "synful"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total == have:
                return  # the part is already complete
            part.unlink()  # the part is longer than the file: start over
            return _transfer(url, part, timeout, progress)
        raise SynfulError(url, f"HTTP {exc.code} {exc.reason}") from None
    with response:
        if have and response.status == 206:
            start = have
            mode = "ab"
            total = _total_from_content_range(response.headers.get("Content-Range"))
        else:
            if have:
                logger.info("%s: the server ignored the range request; starting over", url)
            start, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        received = start
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=Path(url).name,
                disable=not progress,
            ) as bar,
        ):
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                received += len(block)
                bar.update(len(block))
        if total is not None and received < total:
            raise http.client.IncompleteRead(b"", total - received)


def download(
    url: str,
    out: str | os.PathLike,
    sha256: str | None = None,
    require_labels: bool = False,
    retries: int = 5,
    timeout: float = 60.0,
    progress: bool = True,
    retry_wait: float = 1.0,
) -> Path:
    """Download ``url`` to ``out`` and check it.

    Args:
        url: an ``http(s)://`` or ``file://`` URL.
        out: the destination; it appears only after every check passed. An existing ``out``
            that passes the checks is kept (no transfer).
        sha256: the expected hex digest (case-insensitive), checked when given.
        require_labels: also require ``volumes/labels/neuron_ids`` and ``annotations``
            (training samples).
        retries: how many times a transfer cut off midway is resumed.
        timeout: socket timeout (seconds).
        progress: show a tqdm progress bar.
        retry_wait: seconds before a resume (doubled each time).

    Raises:
        SynfulError: an HTTP error, a connection that keeps failing (the ``.part`` stays for
            a later resume), a sha256 mismatch or a file that is not a CREMI sample (the
            ``.part`` is removed then).
    """
    out = Path(out)
    expected = sha256.lower() if sha256 else None
    if out.exists():
        _check(out, expected, require_labels, out)
        logger.info("%s is already there", out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(out)
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout, progress)
            break
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, urllib.error.URLError) and not part.exists():
                raise SynfulError(url, f"cannot download ({exc.reason})") from None
            if attempt == retries:
                raise SynfulError(
                    url, f"transfer failed ({type(exc).__name__}); rerun to resume from {part}"
                ) from None
            logger.warning("%s: transfer cut off (%s); resuming", url, type(exc).__name__)
            time.sleep(retry_wait * 2**attempt)
    try:
        _check(part, expected, require_labels, url)
    except SynfulError:
        part.unlink()
        raise
    os.replace(part, out)
    logger.info("downloaded %s -> %s", url, out)
    return out


def _check(path: Path, expected: str | None, require_labels: bool, name) -> None:
    if expected:
        actual = sha256_of(path)
        if actual != expected:
            raise SynfulError(name, f"sha256 mismatch: expected {expected}, got {actual}")
    check_cremi(path, require_labels, name)
