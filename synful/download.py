"""Download a CREMI HDF5 file (or any file): streamed, resumable, checked, atomic.

Only ``https://``, ``http://`` and ``file://`` URLs are fetched; a redirect may keep the scheme
or go from http to https, any other (to ftp, file, or from https down to http) is an error.

The transfer goes to ``<out>.part``; an existing ``.part`` is resumed with an HTTP Range
request (a server that ignores the range restarts it). The URL, the server's validators (ETag,
Last-Modified) and the file's size of a transfer are kept in ``<out>.part.json``; a resume sends
a validator as ``If-Range`` and starts over when the server's file changed since the ``.part``
was begun (other validators or size), when the ``.part`` was begun from another URL, or when
the partial response (206) does not start at the ``.part``'s size. A connection cut off midway
is resumed up to ``retries`` times; a local write error (no space left) is not retried.

The complete file is checked before anything parses it: against ``sha256`` when given, else
against the digest that the first download of the same URL to ``out`` recorded in
``<out>.sha256.json`` (``{"url", "sha256", "size"}``, written after every successful
download), then the CREMI layout unless ``check_layout=False``. It is synced to disk and only
then renamed to ``out``.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .errors import SynfulError
from .io.cremi import VOLUME_PATHS, CremiFile
from .outputs import FILE, claim, output

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
#: the URL schemes that are fetched
SCHEMES = ("https", "http", "file")
_VALIDATORS = ("etag", "last_modified")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def part_path(out: str | os.PathLike) -> Path:
    """Where a download of ``out`` in progress is kept."""
    out = Path(out)
    return out.with_name(out.name + ".part")


def meta_path(out: str | os.PathLike) -> Path:
    """Where the URL, validators (ETag, Last-Modified) and size of a ``.part`` are kept."""
    out = Path(out)
    return out.with_name(out.name + ".part.json")


def lock_path(out: str | os.PathLike) -> Path:
    """Where the sha256 of the first download of a URL to ``out`` is recorded."""
    out = Path(out)
    return out.with_name(out.name + ".sha256.json")


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def local_write_problem(exc: OSError) -> str:
    """The problem of a local write error, as the one-line message says it."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror or str(exc)


class _WriteError(Exception):
    """Writing the ``.part`` (or its ``.json``) failed: a local problem, never retried."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(f"{path}: {error}")
        self.path, self.error = path, error


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def check_url(url: str) -> None:
    """Refuse a URL whose scheme is not https, http or file."""
    scheme = _scheme(url)
    if scheme not in SCHEMES:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise SynfulError(url, f"unsupported URL ({shown}): use https://, http:// or file://")


def redirect_allowed(old: str, new: str) -> bool:
    """A redirect keeps the scheme or goes from http to https."""
    before, after = _scheme(old), _scheme(new)
    return after == before or (before, after) == ("http", "https")


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects that keep the scheme (or go from http to https); others are errors."""

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        if location is not None:
            new = urllib.parse.urljoin(req.full_url, location.strip())
            if not redirect_allowed(req.full_url, new):
                fp.close()
                raise SynfulError(
                    req.full_url,
                    f"redirected to {new}: a redirect may not change the scheme "
                    f"({_scheme(req.full_url)} to {_scheme(new) or 'none'})",
                )
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_Redirects)


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


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(first byte, total size)`` of a Content-Range header (``None`` where not given)."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    first, total = match.groups()
    return (
        int(first) if first is not None else None,
        int(total) if total not in (None, "*") else None,
    )


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


def _write_meta(meta: Path, url: str, validators: dict, size: int | None) -> None:
    record = {"url": url, **validators}
    if size is not None:
        record["size"] = size
    tmp = meta.with_name(meta.name + ".tmp")
    try:
        tmp.write_text(json.dumps(record))
        os.replace(tmp, meta)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _WriteError(meta, exc) from exc


def _if_range(validators: dict) -> str | None:
    """The ``If-Range`` value: a strong ETag, else the Last-Modified date (RFC 9110 13.1.5)."""
    etag = validators.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return validators.get("last_modified")


def _changed(recorded: dict, headers, total: int | None) -> bool:
    """Whether the server names a version (validators, size) other than the recorded one."""
    now = _validators(headers)
    if any(key in now and key in recorded and now[key] != recorded[key] for key in _VALIDATORS):
        return True
    return total is not None and recorded.get("size") not in (None, total)


def _start_over(part: Path, meta: Path, url: str, why: str) -> None:
    logger.info("%s: %s; starting over", url, why)
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def _write_all(f, block: bytes, part: Path) -> None:
    view = memoryview(block)
    try:
        while view:
            view = view[f.write(view) :]
    except OSError as exc:
        raise _WriteError(part, exc) from exc


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
    request = urllib.request.Request(url, headers={"User-Agent": "synful"})
    if have:
        request.add_header("Range", f"bytes={have}-")
        if _if_range(recorded):
            request.add_header("If-Range", _if_range(recorded))
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == have and not _changed(recorded, exc.headers, total):
                return  # the part is already complete
            # the part is longer than the file, or the file changed: start over
            _start_over(part, meta, url, "the server's file differs from the partial download")
            return _transfer(url, part, timeout, progress)
        raise SynfulError(url, f"HTTP {exc.code} {exc.reason}") from None
    with response:
        if getattr(response, "status", None) == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            why = None
            if not have:
                raise SynfulError(url, "the server sent part of the file without a range request")
            if first != have:
                # a range other than the one asked for: appending it would corrupt the file
                why = f"the server sent bytes from {first} on, not from {have}"
            elif _changed(recorded, response.headers, total):
                # a server that ignores If-Range sends the new file's tail
                why = "the file on the server changed since the partial download"
            if why:
                response.close()
                _start_over(part, meta, url, why)
                return _transfer(url, part, timeout, progress)
            start, mode = have, "ab"
        else:
            if have:
                logger.info(
                    "%s: the server ignored the range request or the file changed; starting over",
                    url,
                )
            start, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
            # recorded before the first byte, so that a later resume can tell a changed file
            _write_meta(meta, url, _validators(response.headers), total)
        received = start
        try:
            f = open(part, mode, buffering=0)
        except OSError as exc:
            raise _WriteError(part, exc) from exc
        with (
            f,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=Path(urllib.parse.urlsplit(url).path).name,
                disable=not progress,
            ) as bar,
        ):
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                _write_all(f, block, part)
                received += len(block)
                bar.update(len(block))
        if total is not None and received < total:
            raise http.client.IncompleteRead(b"", total - received)


def _read_lock(lock: Path) -> dict | None:
    """The record of ``lock`` (``None`` when there is none)."""
    if not lock.exists():
        return None
    try:
        record = json.loads(lock.read_text())
        valid = (
            isinstance(record, dict)
            and isinstance(record.get("url"), str)
            and isinstance(record.get("sha256"), str)
            and _SHA256.fullmatch(record["sha256"])
        )
    except (OSError, ValueError):
        valid = False
    if not valid:
        raise SynfulError(
            lock, "not a sha256 lock file of synful download (delete it to record anew)"
        )
    return record


def _write_lock(lock: Path, url: str, sha256: str, size: int) -> None:
    tmp = lock.with_name(lock.name + ".tmp")
    try:
        tmp.write_text(json.dumps({"url": url, "sha256": sha256, "size": size}, indent=1) + "\n")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, lock)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


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
        url: an ``https://``, ``http://`` or ``file://`` URL.
        out: the destination; it appears only after every check passed. An existing ``out``
            that passes the checks is kept (no transfer).
        sha256: the expected hex digest (case-insensitive), checked when given. Without it, a
            download of the URL that ``out.sha256.json`` names must have the digest recorded
            there (by the first download).
        require_labels: also require ``volumes/labels/neuron_ids`` and ``annotations``
            (training samples).
        retries: how many times a transfer cut off midway is resumed.
        timeout: socket timeout (seconds).
        progress: show a tqdm progress bar.
        retry_wait: seconds before a resume (doubled each time).
        check_layout: check that the file is a CREMI HDF5 sample; ``False`` for any other
            file (an archive), which is then checked by its sha256 only.

    Raises:
        SynfulError: an unsupported URL or redirect, an HTTP error, a connection that keeps
            failing or a full disk (the ``.part`` stays for a later resume), a sha256
            mismatch (given or recorded) or a file that is not a CREMI sample (the ``.part``
            is removed then).
    """
    if require_labels and not check_layout:
        raise ValueError("require_labels needs check_layout")
    check_url(url)
    out = Path(out)
    with claim([output(out, FILE)]):
        return _download(
            url, out, sha256, require_labels, retries, timeout, progress, retry_wait, check_layout
        )


def _download(
    url, out, sha256, require_labels, retries, timeout, progress, retry_wait, check_layout
) -> Path:
    expected = sha256.lower() if sha256 else None
    lock = lock_path(out)
    locked = _read_lock(lock)
    if locked is not None and locked["url"] != url:
        locked = None  # recorded for another URL: the next successful download replaces it
    if out.exists():
        _check(out, expected, locked, lock, require_labels, out, check_layout, digest=False)
        logger.info("%s is already there", out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(out)
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout, progress)
            break
        except _WriteError as exc:
            raise SynfulError(
                exc.path, f"{local_write_problem(exc.error)} (rerun to resume from {part.name})"
            ) from None
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
        actual = _check(
            part, expected, locked, lock, require_labels, url, check_layout, digest=True
        )
    except SynfulError:
        part.unlink()
        meta.unlink(missing_ok=True)
        raise
    try:
        with open(part, "rb+") as f:
            os.fsync(f.fileno())
        if locked is None or expected is not None:
            if locked is None and lock.exists():
                logger.info("%s: recording the sha256 of %s (was another URL's)", lock, url)
            _write_lock(lock, url, actual, part.stat().st_size)
        os.replace(part, out)
    except OSError as exc:
        raise SynfulError(out, local_write_problem(exc)) from None
    meta.unlink(missing_ok=True)
    logger.info("downloaded %s -> %s (sha256 %s)", url, out, actual)
    return out


def _check(
    path: Path,
    expected: str | None,
    locked: dict | None,
    lock: Path,
    require_labels: bool,
    name,
    check_layout: bool,
    digest: bool,
) -> str | None:
    """Check the digest (given, else recorded), then the layout; returns the digest.

    The digest is computed when one is given or recorded, or when ``digest`` (to record it).
    """
    actual = None
    if expected or locked or digest:
        actual = sha256_of(path)
    if expected and actual != expected:
        raise SynfulError(name, f"sha256 mismatch: expected {expected}, got {actual}")
    if not expected and locked and actual != locked["sha256"]:
        raise SynfulError(
            name,
            f"sha256 {actual} differs from {locked['sha256']}, recorded in {lock} by the first "
            f"download of this URL: the file changed (delete {lock.name} to accept it)",
        )
    if check_layout:
        check_cremi(path, require_labels, name)
    return actual
