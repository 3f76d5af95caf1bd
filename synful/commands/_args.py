"""Argument helpers shared by the command modules."""

from __future__ import annotations

import argparse

from ..geometry import REGION_NAMES_TEXT, Coordinate, Roi, is_region_name


def zyx(parser: argparse.ArgumentParser, flag: str, help: str, default=None, type=int):
    parser.add_argument(
        flag, nargs=3, type=type, metavar=("Z", "Y", "X"), default=default, help=help
    )


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch's CPU threads in this process (what a workflow job was given)."""
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads of torch in this process (torch.set_num_threads); None: torch's default",
    )


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (imports torch only when given)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def parse_roi(text: str) -> Roi | str:
    """``'z0:z1,y0:y1,x0:x1'`` in nm -> Roi; ``raw``, ``labels``, ``masks/NAME`` -> the name.

    Names are resolved against the sample store by :func:`synful.predict.roi.resolve_roi`.
    """
    text = text.strip()
    if is_region_name(text):
        return text
    try:
        parts = [p.split(":") for p in text.split(",")]
        begin = Coordinate(int(float(a)) for a, _ in parts)
        end = Coordinate(int(float(b)) for _, b in parts)
        if len(begin) != 3:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid ROI {text!r}: expected z0:z1,y0:y1,x0:x1 in nm, {REGION_NAMES_TEXT}"
        ) from None
    return Roi(begin, end - begin)
