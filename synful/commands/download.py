"""``synful download URL OUT``: fetch a CREMI sample (or an archive), resumably, and check it."""

from __future__ import annotations

from ..settings.fields import add_options, apply_settings, settings_option, values_from
from ..settings.samples import DownloadSettings
from ..settings.workflow import WORKFLOW_KEYS

NAME = "download"
HELP = "download a CREMI HDF5 sample or any file (resumable, checked)"
DESCRIPTION = (
    "Download a file (https://, http:// or file:// URL; a redirect may not change the scheme, "
    "except from http to https) with a progress bar. The transfer goes to OUT.part and resumes "
    "from it (HTTP Range) after a cut connection or on a rerun; the URL, the server's "
    "ETag/Last-Modified and the size, kept in OUT.part.json, make a resume start over when the "
    "file on the server changed, as does a partial response that does not start where OUT.part "
    "ends. The complete file is checked before anything parses it: against --sha256 when given, "
    "else against the sha256 that the first download of the same URL recorded in "
    "OUT.sha256.json (delete that file to accept a changed file); then the CREMI HDF5 layout "
    "unless --no-check. Only then is it renamed to OUT. A full disk is an error (rerun to "
    "resume), not a retry. Use --no-check for archives and other non-CREMI files."
)


def add_arguments(parser) -> None:
    parser.add_argument("url", metavar="URL", help="https://, http:// or file:// URL")
    parser.add_argument("out", metavar="OUT", help="where to put the file (e.g. OUT.hdf)")
    add_options(parser, DownloadSettings)
    settings_option(parser, NAME)


def run(args) -> int:
    from ..download import download
    from ..errors import SynfulError

    apply_settings(args, NAME, (DownloadSettings,), skip=WORKFLOW_KEYS[NAME])
    settings = DownloadSettings(**values_from(DownloadSettings, args))
    if settings.no_check and settings.require_labels:
        raise SynfulError(None, "--require-labels checks the CREMI layout; drop --no-check")
    download(
        args.url,
        args.out,
        sha256=settings.sha256,
        require_labels=settings.require_labels,
        retries=settings.retries,
        timeout=settings.timeout,
        progress=not args.quiet,
        check_layout=not settings.no_check,
    )
    return 0
