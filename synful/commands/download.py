"""``synful download URL OUT.hdf``: fetch a CREMI sample, resumably, and check it."""

from __future__ import annotations

NAME = "download"
HELP = "download a CREMI HDF5 sample (resumable, checked)"
DESCRIPTION = (
    "Download a CREMI HDF5 file with a progress bar. The transfer goes to OUT.hdf.part and "
    "resumes from it (HTTP Range) after a cut connection or on a rerun; the complete file is "
    "checked (sha256 when given, the CREMI layout always) and only then renamed to OUT.hdf."
)


def add_arguments(parser) -> None:
    parser.add_argument("url", metavar="URL", help="http(s):// or file:// URL")
    parser.add_argument("out", metavar="OUT.hdf", help="where to put the file")
    parser.add_argument("--sha256", metavar="HEX", help="expected sha256 digest")
    parser.add_argument(
        "--require-labels",
        action="store_true",
        help="require volumes/labels/neuron_ids and annotations (training samples)",
    )
    parser.add_argument(
        "--retries", type=int, default=5, help="resumes after a transfer is cut off"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout (seconds)")


def run(args) -> int:
    from ..download import download

    download(
        args.url,
        args.out,
        sha256=args.sha256,
        require_labels=args.require_labels,
        retries=max(args.retries, 0),
        timeout=args.timeout,
        progress=not args.quiet,
    )
    return 0
