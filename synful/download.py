"""Download a CREMI HDF5 file (or any file): streamed, resumable, checked, atomic.

The transfer goes to ``<out>.part``; an existing ``.part`` is resumed with an HTTP Range
request (a server that ignores the range restarts it). The server's validators (ETag,
Last-Modified) of a transfer are kept in ``<out>.part.json``; a resume sends them as
``If-Range`` and starts over when the server's file changed since the ``.part`` was begun. A
connection cut off midway is resumed up to ``retries`` times. The complete file is checked
(sha256 when given, then the CREMI layout unless ``check_layout=False``), synced to disk and
only then renamed to ``out``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
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


def meta_path(out: str | os.PathLike) -> Path:
    """Where the server's validators (ETag, Last-Modified) of a ``.part`` are kept."""
    out = Path(out)
    return out.with_name(out.name + ".part.json")


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


def _validators(headers) -> dict:
    """The headers that identify a version of the file on the server."""
    found = {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
    return {key: value for key, value in found.items() if value}


def _read_meta(meta: Path) -> dict:
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(meta: Path, url: str, validators: dict) -> None:
    if not validators:
        meta.unlink(missing_ok=True)
        return
    tmp = meta.with_name(meta.name + ".tmp")
    tmp.write_text(json.dumps({"url": url, **validators}))
    os.replace(tmp, meta)


def _if_range(validators: dict) -> str | None:
    """The ``If-Range`` value: a strong ETag, else the Last-Modified date (RFC 9110 13.1.5)."""
    etag = validators.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return validators.get("last_modified")


def _changed(recorded: dict, headers) -> bool:
    """Whether the server names a version other than the recorded one."""
    now = _validators(headers)
    return any(key in now and now[key] != value for key, value in recorded.items())


def _start_over(part: Path, meta: Path, url: str, why: str) -> None:
    logger.info("%s: %s; starting over", url, why)
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Fetch ``url`` into ``part``, resuming from its size; raises on a cut connection."""
    meta = part.with_name(part.name + ".json")
    have = part.stat().st_size if part.exists() else 0
    recorded = {}
    if have:
        recorded = _read_meta(meta)
        if recorded and recorded.get("url") != url:
            _start_over(part, meta, url, f"{part} was begun from {recorded.get('url')}")
            return _transfer(url, part, timeout, progress)
        recorded.pop("url", None)
    request = urllib.request.Request(url, headers={"User-Agent": "synful"})
    if have:
        request.add_header("Range", f"bytes={have}-")
        if _if_range(recorded):
            request.add_header("If-Range", _if_range(recorded))
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            total = _total_from_content_range(exc.headers.get("Content-Range"))
            if total == have and not _changed(recorded, exc.headers):
                return  # the part is already complete
            # the part is longer than the file, or the file changed: start over
            _start_over(part, meta, url, "the server's file differs from the partial download")
            return _transfer(url, part, timeout, progress)
        raise SynfulError(url, f"HTTP {exc.code} {exc.reason}") from None
    with response:
        if have and response.status == 206 and _changed(recorded, response.headers):
            # a server that ignores If-Range sends the new file's tail: fetch it all again
            response.close()
            _start_over(
                part, meta, url, "the file on the server changed since the partial download"
            )
            return _transfer(url, part, timeout, progress)
        if have and response.status == 206:
            start = have
            mode = "ab"
            total = _total_from_content_range(response.headers.get("Content-Range"))
        else:
            if have:
                logger.info(
                    "%s: the server ignored the range request or the file changed; starting over",
                    url,
                )
            start, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            # recorded before the first byte, so that a later resume can tell a changed file
            _write_meta(meta, url, _validators(response.headers))
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
    check_layout: bool = True,
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
        check_layout: check that the file is a CREMI HDF5 sample; ``False`` for any other
            file (an archive), which is then checked by its sha256 only.

    Raises:
        SynfulError: an HTTP error, a connection that keeps failing (the ``.part`` stays for
            a later resume), a sha256 mismatch or a file that is not a CREMI sample (the
            ``.part`` is removed then).
    """
    if require_labels and not check_layout:
        raise ValueError("require_labels needs check_layout")
    out = Path(out)
    expected = sha256.lower() if sha256 else None
    if out.exists():
        _check(out, expected, require_labels, out, check_layout)
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
    meta = meta_path(out)
    try:
        _check(part, expected, require_labels, url, check_layout)
    except SynfulError:
        part.unlink()
        meta.unlink(missing_ok=True)
        raise
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, out)
    meta.unlink(missing_ok=True)
    logger.info("downloaded %s -> %s", url, out)
    return out


def _check(
    path: Path, expected: str | None, require_labels: bool, name, check_layout: bool = True
) -> None:
    if expected:
        actual = sha256_of(path)
        if actual != expected:
            raise SynfulError(name, f"sha256 mismatch: expected {expected}, got {actual}")
    if check_layout:
        check_cremi(path, require_labels, name)
