"""`synful unpack`: one member of a tar/zip archive to a file, atomically, with one-line errors."""

import hashlib
import io
import os
import tarfile
import zipfile

import h5py
import numpy as np
import pytest

from synful.archive import extract_member, temporary_path
from synful.cli import main
from synful.errors import SynfulError

NOTE = b"realigned CREMI, version 0.1\n" * 50
TAR_MODES = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}


def hdf5_bytes(tmp_path) -> bytes:
    path = tmp_path / "source.hdf"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "volumes/raw", data=np.arange(4 * 30 * 30, dtype=np.uint8).reshape(4, 30, 30)
        )
    data = path.read_bytes()
    path.unlink()
    return data


def members(tmp_path) -> dict[str, bytes]:
    return {
        "cremi_v01/README.txt": NOTE,
        "cremi_v01/sample_A_20160501.hdf": hdf5_bytes(tmp_path),
        "cremi_v01/masks/mask_A.hdf": hdf5_bytes(tmp_path),
    }


def write_archive(path, files: dict[str, bytes], dot_prefix=False) -> None:
    """A tar (by suffix: plain, gz, bz2, xz) or zip archive with directory entries, a symlink
    and a hard link next to ``files``."""
    folders = sorted({os.path.dirname(name) for name in files})
    prefix = "./" if dot_prefix else ""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for folder in folders:
                zf.writestr(folder + "/", b"")
            for name, data in files.items():
                zf.writestr(name, data)
            link = zipfile.ZipInfo("cremi_v01/link.hdf")
            link.external_attr = (0o120777) << 16
            zf.writestr(link, b"sample_A_20160501.hdf")
        return
    mode = next(m for suffix, m in TAR_MODES.items() if path.name.endswith(suffix))
    with tarfile.open(path, mode) as tar:
        for folder in folders:
            info = tarfile.TarInfo(prefix + folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, kind in [("link.hdf", tarfile.SYMTYPE), ("hard.hdf", tarfile.LNKTYPE)]:
            info = tarfile.TarInfo(prefix + "cremi_v01/" + name)
            info.type, info.linkname = kind, "cremi_v01/sample_A_20160501.hdf"
            tar.addfile(info)
        fifo = tarfile.TarInfo(prefix + "cremi_v01/fifo")
        fifo.type = tarfile.FIFOTYPE
        tar.addfile(fifo)


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def error_line(err: str) -> str:
    """The one error line (after the progress bar, which also goes to stderr)."""
    assert err.count("synful: error: ") == 1 and "Traceback" not in err, err
    assert err.endswith("\n")
    return err.strip().splitlines()[-1].split("\r")[-1]


def only_inputs(tmp_path, *keep):
    return sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip"])
def test_extracts_each_member(tmp_path, suffix):
    files = members(tmp_path)
    archive = tmp_path / f"groundtruth{suffix}"
    write_archive(archive, files)
    for name, data in files.items():
        out = tmp_path / "out" / name
        extract_member(
            archive, name, out, sha256=hashlib.sha256(data).hexdigest().upper(), progress=False
        )
        assert out.read_bytes() == data
        assert not temporary_path(out).exists()
    with h5py.File(tmp_path / "out/cremi_v01/sample_A_20160501.hdf") as f:
        assert f["volumes/raw"].shape == (4, 30, 30)


def test_dot_prefixed_names_and_replacing_an_old_out(tmp_path):
    files = members(tmp_path)
    archive = tmp_path / "g.tar.gz"
    write_archive(archive, files, dot_prefix=True)
    out = tmp_path / "readme.txt"
    out.write_bytes(b"old")
    extract_member(archive, "./cremi_v01//README.txt", out, progress=False)
    assert out.read_bytes() == NOTE
    extract_member(archive, "cremi_v01/README.txt", out, progress=False)
    assert out.read_bytes() == NOTE


def test_stale_temporary_file_is_overwritten(tmp_path):
    archive = tmp_path / "g.tar.gz"
    write_archive(archive, members(tmp_path))
    out = tmp_path / "readme.txt"
    temporary_path(out).write_bytes(b"left by a killed run" * 1000)
    extract_member(archive, "cremi_v01/README.txt", out, progress=False)
    assert out.read_bytes() == NOTE
    assert only_inputs(tmp_path, "g.tar.gz", "readme.txt")


def test_cli_unpack_with_progress_bar(tmp_path, capsys):
    files = members(tmp_path)
    archive = tmp_path / "groundtruth.tar.gz"
    write_archive(archive, files)
    out = tmp_path / "archives" / "groundtruth" / "cremi_v01" / "sample_A_20160501.hdf"
    data = files["cremi_v01/sample_A_20160501.hdf"]
    code, err = run_cli(
        capsys,
        "unpack",
        archive,
        "cremi_v01/sample_A_20160501.hdf",
        out,
        "--sha256",
        hashlib.sha256(data).hexdigest(),
    )
    assert code == 0, err
    assert "groundtruth.tar.gz: cremi_v01/sample_A_20160501.hdf" in err  # the progress bar
    assert out.read_bytes() == data
    code, err = run_cli(
        capsys, "unpack", archive, "cremi_v01/README.txt", out.with_suffix(".txt"), "--quiet"
    )
    assert code == 0 and err == ""


def test_help_lists_unpack(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "unpack" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
@pytest.mark.parametrize(
    "member, problem",
    [
        (
            "cremi_v01/sample_A.hdf",
            "no member cremi_v01/sample_A.hdf (did you mean cremi_v01/sample_A_20160501.hdf",
        ),
        ("other/README.txt", "no member other/README.txt (did you mean cremi_v01/README.txt?)"),
        ("cremi_v01", "is a directory, not a file"),
        ("cremi_v01/masks/", "is a directory, not a file"),
        ("cremi_v01/link.hdf", "is a symbolic link"),
        ("/cremi_v01/README.txt", "unsafe member path (absolute or empty)"),
        ("cremi_v01/../../etc/passwd", "unsafe member path (contains '..')"),
        ("", "unsafe member path"),
    ],
)
def test_member_errors_are_one_line(tmp_path, capsys, suffix, member, problem):
    archive = tmp_path / f"g{suffix}"
    write_archive(archive, members(tmp_path))
    code, err = run_cli(capsys, "unpack", archive, member, tmp_path / "x.hdf")
    assert code == 1, err
    line = error_line(err)
    assert line.startswith("synful: error: ") and problem in line
    assert only_inputs(tmp_path, archive.name)


@pytest.mark.parametrize(
    "member, problem",
    [
        (
            "cremi_v01/hard.hdf",
            "is a hard link (to cremi_v01/sample_A_20160501.hdf), not a regular file",
        ),
        ("cremi_v01/fifo", "is not a regular file"),
    ],
)
def test_tar_special_members(tmp_path, capsys, member, problem):
    archive = tmp_path / "g.tar"
    write_archive(archive, members(tmp_path))
    code, err = run_cli(capsys, "unpack", archive, member, tmp_path / "x.hdf")
    assert code == 1 and error_line(err) == f"synful: error: {archive}:{member}: {problem}"
    assert only_inputs(tmp_path, "g.tar")


def test_archive_errors(tmp_path, capsys):
    out = tmp_path / "x.hdf"
    code, err = run_cli(capsys, "unpack", tmp_path / "missing.tar.gz", "a", out)
    assert code == 1 and err == f"synful: error: {tmp_path / 'missing.tar.gz'}: no such file\n"

    code, err = run_cli(capsys, "unpack", tmp_path, "a", out)
    assert code == 1 and err == f"synful: error: {tmp_path}: is a directory, not an archive\n"

    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"<html>404 not found</html>" * 40)
    code, err = run_cli(capsys, "unpack", junk, "cremi_v01/README.txt", out)
    assert code == 1
    assert error_line(err).startswith(f"synful: error: {junk}: not a tar or zip archive")

    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    code, err = run_cli(capsys, "unpack", empty, "cremi_v01/README.txt", out)
    assert code == 1
    assert error_line(err).startswith(f"synful: error: {empty}: not a tar or zip archive")

    no_files = tmp_path / "no_files.zip"
    zipfile.ZipFile(no_files, "w").close()
    code, err = run_cli(capsys, "unpack", no_files, "cremi_v01/README.txt", out)
    assert code == 1
    assert error_line(err) == (
        f"synful: error: {no_files}: no member cremi_v01/README.txt (the archive holds no files)"
    )

    archive = tmp_path / "g.tar.gz"
    write_archive(archive, members(tmp_path))
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    code, err = run_cli(capsys, "unpack", truncated, "cremi_v01/masks/mask_A.hdf", out)
    assert code == 1
    assert error_line(err).startswith(f"synful: error: {truncated}: damaged archive (")
    inputs = ["junk.tar.gz", "empty.tar", "no_files.zip", "g.tar.gz", "cut.tar.gz"]
    assert only_inputs(tmp_path, *inputs)


def test_out_is_a_directory(tmp_path, capsys):
    archive = tmp_path / "g.zip"
    write_archive(archive, members(tmp_path))
    (tmp_path / "out").mkdir()
    code, err = run_cli(capsys, "unpack", archive, "cremi_v01/README.txt", tmp_path / "out")
    assert code == 1 and err.startswith(f"synful: error: {tmp_path / 'out'}: is a directory")
    assert err.count("\n") == 1
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("suffix", [".tar.xz", ".zip"])
def test_checksum_mismatch_leaves_no_out(tmp_path, capsys, suffix):
    archive = tmp_path / f"g{suffix}"
    files = members(tmp_path)
    write_archive(archive, files)
    actual = hashlib.sha256(files["cremi_v01/README.txt"]).hexdigest()
    code, err = run_cli(
        capsys, "unpack", archive, "cremi_v01/README.txt", tmp_path / "r.txt", "--sha256", "ab" * 32
    )
    assert code == 1
    assert error_line(err) == (
        f"synful: error: {archive}:cremi_v01/README.txt: sha256 mismatch: "
        f"expected {'ab' * 32}, got {actual}"
    )
    assert only_inputs(tmp_path, archive.name)


def test_hdf_out_must_be_hdf5(tmp_path, capsys):
    archive = tmp_path / "g.tgz"
    write_archive(archive, members(tmp_path))
    code, err = run_cli(capsys, "unpack", archive, "cremi_v01/README.txt", tmp_path / "r.h5")
    line = error_line(err)
    assert code == 1
    assert line.startswith(f"synful: error: {archive}:cremi_v01/README.txt: not an HDF5 file")
    assert only_inputs(tmp_path, "g.tgz")


def test_corrupt_zip_member_leaves_no_out(tmp_path, capsys):
    archive = tmp_path / "g.zip"
    write_archive(archive, {"cremi_v01/README.txt": NOTE})
    data = bytearray(archive.read_bytes())
    start = data.index(b"cremi_v01/README.txt") + len("cremi_v01/README.txt") + 5
    data[start] ^= 0xFF  # flip a byte of the compressed member: CRC or inflate error
    archive.write_bytes(bytes(data))
    code, err = run_cli(capsys, "unpack", archive, "cremi_v01/README.txt", tmp_path / "r.txt")
    assert code == 1 and error_line(err).startswith(f"synful: error: {archive}: damaged archive (")
    assert only_inputs(tmp_path, "g.zip")


def test_library_error_type(tmp_path):
    archive = tmp_path / "g.zip"
    write_archive(archive, members(tmp_path))
    with pytest.raises(SynfulError, match="no member"):
        extract_member(archive, "nothing/here.bin", tmp_path / "x", progress=False)


def test_unpack_refuses_to_replace_its_archive(tmp_path):
    """OUT = the archive itself: a one-line error, the archive untouched."""
    archive = tmp_path / "a.tar.gz"
    member = tmp_path / "m.txt"
    member.write_text("member")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(member, arcname="m.txt")
    before = archive.read_bytes()
    with pytest.raises(SynfulError, match="is an input"):
        extract_member(archive, "m.txt", archive, progress=False)
    assert archive.read_bytes() == before
