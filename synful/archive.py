"""Extract one member of a tar or zip archive to a file: streamed, checked, atomic.

The realigned CREMI data come as one ``.tar.gz`` archive; the workflow downloads it once and
extracts single members from it. A tar archive (plain, gzip, bzip2 or xz; recognised by its
content, not its name) is read as a stream, once, up to the member, so a member near the start
of a large ``.tar.gz`` is found without reading the rest; a zip archive is read through its
central directory. The member goes to a hidden sibling of ``out``, is synced to disk, checked
(sha256 when given; an ``out`` named ``.hdf``, ``.h5`` or ``.hdf5`` must open with h5py) and
only then renamed to ``out``: a failure leaves no ``out`` (and no temporary file, except
after a kill, which the next run overwrites).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import lzma
import os
import posixpath
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from .errors import SynfulError
from .outputs import FILE, claim, output

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
HDF5_SUFFIXES = (".hdf", ".h5", ".hdf5")
# errors of a damaged or truncated archive while it is read
READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError)
MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
    b"PK\x05\x06": "zip",  # an empty zip archive
}


def temporary_path(out: str | os.PathLike) -> Path:
    """The hidden sibling that ``out`` is written to (fixed, so a rerun overwrites a stale one)."""
    out = Path(out)
    return out.with_name(f".{out.name}.unpack-part")


def normalize_member(name: str) -> str:
    """An archive member name without ``./`` prefixes, duplicate or trailing slashes."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)


def check_member_path(member: str) -> str:
    """The normalized ``member``; raises for an empty, absolute or ``..`` path."""
    if not member or member.startswith(("/", "\\")) or PurePosixPath(member).is_absolute():
        raise SynfulError(member or "''", "unsafe member path (absolute or empty)")
    if len(member) > 2 and member[0].isalpha() and member[1] == ":" and member[2] in "/\\":
        raise SynfulError(member, "unsafe member path (a drive letter)")
    if ".." in member.replace("\\", "/").split("/"):
        raise SynfulError(member, "unsafe member path (contains '..')")
    normalized = normalize_member(member)
    if not normalized:
        raise SynfulError(member, "unsafe member path (names the archive's root)")
    return normalized


def archive_kind(path: Path) -> str:
    """``'zip'`` or ``'tar'`` (possibly compressed), from the first bytes of ``path``."""
    with open(path, "rb") as f:
        head = f.read(512)
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return "zip" if kind == "zip" else "tar"
    return "tar"  # plain tar (or not an archive: tarfile says so)


def extract_member(
    archive: str | os.PathLike,
    member: str,
    out: str | os.PathLike,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Extract the regular file ``member`` of ``archive`` to ``out``, atomically.

    Args:
        archive: a ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz`` or ``.zip`` file.
        member: the member's path inside the archive (``./`` prefixes are ignored); the first
            entry of that name is taken.
        out: the destination file; an existing file is replaced.
        sha256: the member's expected hex digest (case-insensitive), checked when given.
        progress: show a tqdm progress bar (archive bytes read for a tar, member bytes for a
            zip).

    Raises:
        SynfulError: a missing or damaged archive, a member that is absent (close names are
            suggested), not a regular file or has an unsafe path, an ``out`` that is a
            directory, a sha256 mismatch or an ``.hdf`` ``out`` that is not HDF5.
    """
    archive, out = Path(archive), Path(out)
    name = check_member_path(member)
    if not archive.exists():
        raise SynfulError(archive, "no such file")
    if archive.is_dir():
        raise SynfulError(archive, "is a directory, not an archive")
    with claim([output(out, FILE)], inputs=[archive]):
        return _extract_member(archive, name, out, sha256, progress)


def _extract_member(archive: Path, name: str, out: Path, sha256, progress) -> Path:
    expected = sha256.lower().strip() if sha256 else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(out)
    try:
        with open(tmp, "wb") as dst:
            if archive_kind(archive) == "zip":
                digest = _from_zip(archive, name, dst, progress)
            else:
                digest = _from_tar(archive, name, dst, progress)
            dst.flush()
            os.fsync(dst.fileno())
        if expected and digest != expected:
            raise SynfulError(
                f"{archive}:{name}", f"sha256 mismatch: expected {expected}, got {digest}"
            )
        if out.suffix.lower() in HDF5_SUFFIXES:
            _check_hdf5(tmp, f"{archive}:{name}")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)
    logger.info("extracted %s from %s -> %s", name, archive, out)
    return out


def _copy(src, dst, bar, archive: Path, count_output: bool) -> str:
    """Copy ``src`` to ``dst``; returns the sha256 of what was copied."""
    digest = hashlib.sha256()
    while True:
        try:
            block = src.read(CHUNK)
        except READ_ERRORS as exc:
            raise SynfulError(archive, f"damaged archive ({_reason(exc)})") from None
        if not block:
            return digest.hexdigest()
        dst.write(block)
        digest.update(block)
        if count_output:
            bar.update(len(block))


class _CountingReader:
    """A read-only file wrapper that advances a progress bar by the bytes read."""

    def __init__(self, f, bar):
        self.f, self.bar = f, bar

    def read(self, size=-1):
        data = self.f.read(size)
        self.bar.update(len(data))
        return data


def _bar(total, desc, progress):
    return tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not progress,
    )


def _from_tar(archive: Path, name: str, dst, progress: bool) -> str:
    names: list[str] = []
    files: list[str] = []
    with (
        open(archive, "rb") as raw,
        _bar(archive.stat().st_size, f"{archive.name}: {name}", progress) as bar,
    ):
        try:
            tar = tarfile.open(fileobj=_CountingReader(raw, bar), mode="r|*")
        except READ_ERRORS as exc:
            raise SynfulError(archive, f"not a tar or zip archive ({_reason(exc)})") from None
        with tar:
            while True:
                try:
                    info = tar.next()
                except READ_ERRORS as exc:
                    raise SynfulError(archive, f"damaged archive ({_reason(exc)})") from None
                if info is None:
                    break
                entry = normalize_member(info.name)
                if entry != name:
                    names.append(entry)
                    if info.isreg():
                        files.append(entry)
                    continue
                if info.isdir():
                    raise SynfulError(f"{archive}:{name}", "is a directory, not a file")
                if info.issym() or info.islnk():
                    kind = "symbolic" if info.issym() else "hard"
                    raise SynfulError(
                        f"{archive}:{name}",
                        f"is a {kind} link (to {info.linkname}), not a regular file",
                    )
                if not info.isreg():
                    raise SynfulError(f"{archive}:{name}", "is not a regular file")
                src = tar.extractfile(info)
                return _copy(src, dst, bar, archive, count_output=False)
    _not_found(archive, name, names, files)


def _from_zip(archive: Path, name: str, dst, progress: bool) -> str:
    try:
        zf = zipfile.ZipFile(archive)
    except READ_ERRORS as exc:
        raise SynfulError(archive, f"damaged zip archive ({_reason(exc)})") from None
    with zf:
        infos = {}
        for info in zf.infolist():
            infos.setdefault(normalize_member(info.filename), info)
        info = infos.get(name)
        if info is None:
            files = [
                entry
                for entry, i in infos.items()
                if not i.is_dir() and stat.S_IFMT(i.external_attr >> 16) in (0, stat.S_IFREG)
            ]
            _not_found(archive, name, list(infos), files)
        mode = info.external_attr >> 16
        if info.is_dir() or stat.S_ISDIR(mode):
            raise SynfulError(f"{archive}:{name}", "is a directory, not a file")
        if stat.S_ISLNK(mode):
            raise SynfulError(f"{archive}:{name}", "is a symbolic link, not a regular file")
        if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            raise SynfulError(f"{archive}:{name}", "is not a regular file")
        try:
            src = zf.open(info)
        except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown compression
            raise SynfulError(f"{archive}:{name}", f"cannot extract ({exc})") from None
        except READ_ERRORS as exc:
            raise SynfulError(archive, f"damaged zip archive ({_reason(exc)})") from None
        with src, _bar(info.file_size, f"{archive.name}: {name}", progress) as bar:
            return _copy(src, dst, bar, archive, count_output=True)


def _not_found(archive: Path, name: str, names: list[str], files: list[str]):
    """Raise for a missing member; suggest up to three close names of regular files."""
    if any(entry.startswith(name + "/") for entry in names):
        raise SynfulError(f"{archive}:{name}", "is a directory, not a file")
    if not files:
        raise SynfulError(archive, f"no member {name} (the archive holds no files)")
    close = difflib.get_close_matches(name, files, n=3, cutoff=0.5)
    if not close:  # the same file name in another folder
        base = posixpath.basename(name)
        close = [e for e in files if posixpath.basename(e) == base][:3]
    if close:
        hint = "did you mean " + ", ".join(close) + "?"
    else:
        hint = f"{len(files)} files, e.g. " + ", ".join(files[:3])
    raise SynfulError(archive, f"no member {name} ({hint})")


def _check_hdf5(path: Path, name: str) -> None:
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError:
        raise SynfulError(name, "not an HDF5 file (the output is named .hdf/.h5/.hdf5)") from None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
