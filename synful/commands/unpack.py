"""``synful unpack ARCHIVE MEMBER OUT``: extract one file of a tar or zip archive, atomically."""

from __future__ import annotations

NAME = "unpack"
HELP = "extract one file of a .tar(.gz/.bz2/.xz) or .zip archive (atomic, checked)"
DESCRIPTION = (
    "Extract the regular file MEMBER (its path inside the archive, e.g. cremi_v01/"
    "sample_A.hdf) of ARCHIVE (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz or .zip, recognised by "
    "content) to OUT with a progress bar. The file is written to a hidden sibling of OUT, "
    "synced and checked (sha256 when given; an OUT ending in .hdf/.h5/.hdf5 must open as "
    "HDF5) and only then renamed to OUT, so a failure leaves no OUT; an existing OUT file is "
    "replaced."
)


def add_arguments(parser) -> None:
    parser.add_argument("archive", metavar="ARCHIVE", help="the archive file")
    parser.add_argument("member", metavar="MEMBER", help="path of the file inside the archive")
    parser.add_argument("out", metavar="OUT", help="where to put the file")
    parser.add_argument("--sha256", metavar="HEX", help="expected sha256 digest of the member")


def run(args) -> int:
    from ..archive import extract_member

    extract_member(args.archive, args.member, args.out, sha256=args.sha256, progress=not args.quiet)
    return 0
