"""``synful download URL OUT``: fetch a CREMI sample (or an archive), resumably, and check it."""

from __future__ import annotations

NAME = "download"
HELP = "download a CREMI HDF5 sample or any file (resumable, checked)"
DESCRIPTION = (
    "Download a file with a progress bar. The transfer goes to OUT.part and resumes from it "
    "(HTTP Range) after a cut connection or on a rerun; the server's ETag/Last-Modified, kept "
    "in OUT.part.json, make a resume start over when the file on the server changed. The "
    "complete file is checked (sha256 when given; the CREMI HDF5 layout unless --no-check) and "
    "only then renamed to OUT. Use --no-check for archives and other non-CREMI files."
)


def add_arguments(parser) -> None:
    parser.add_argument("url", metavar="URL", help="http(s):// or file:// URL")
    parser.add_argument("out", metavar="OUT", help="where to put the file (e.g. OUT.hdf)")
    parser.add_argument("--sha256", metavar="HEX", help="expected sha256 digest")
    parser.add_argument(
        "--require-labels",
        action="store_true",
        help="require volumes/labels/neuron_ids and annotations (training samples)",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="any file (e.g. a .tar.gz archive): skip the CREMI HDF5 layout check "
        "(--sha256 is still checked)",
    )
    parser.add_argument(
        "--retries", type=int, default=5, help="resumes after a transfer is cut off"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout (seconds)")


def run(args) -> int:
    from ..download import download
    from ..errors import SynfulError

    if args.no_check and args.require_labels:
        raise SynfulError(None, "--require-labels checks the CREMI layout; drop --no-check")
    download(
        args.url,
        args.out,
        sha256=args.sha256,
        require_labels=args.require_labels,
        retries=max(args.retries, 0),
        timeout=args.timeout,
        progress=not args.quiet,
        check_layout=not args.no_check,
    )
    return 0
