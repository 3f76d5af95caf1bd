"""Argument helpers shared by the command modules."""

from __future__ import annotations

import argparse

from ..geometry import Coordinate, Roi, is_region_name


def zyx(parser: argparse.ArgumentParser, flag: str, help: str, default=None, type=int):
    parser.add_argument(flag, nargs=3, type=type, metavar=("Z", "Y", "X"), default=default, help=help)


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
            f"invalid ROI {text!r}: expected z0:z1,y0:y1,x0:x1 in nm, raw, labels or masks/NAME"
        ) from None
    return Roi(begin, end - begin)
