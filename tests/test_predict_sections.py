"""Missing sections (black) found in a block of raw and filled from their neighbours."""

import numpy as np

from synful.predict.sections import fill_missing_sections, missing_sections


def block(values):
    """A (z, 2, 3) uint8 block whose section z is filled with ``values[z]``."""
    return np.repeat(np.asarray(values, np.uint8)[:, None, None], 6, axis=1).reshape(-1, 2, 3)


def test_black_sections_inside_the_volume_are_missing():
    raw = block([0, 10, 0, 30, 0])
    assert missing_sections(raw).tolist() == [True, False, True, False, True]
    # the first and last sections lie outside the volume: padding, not missing
    assert missing_sections(raw, slice(1, 4)).tolist() == [False, False, True, False, False]


def test_a_section_with_any_signal_is_present():
    raw = block([10, 0, 30])
    raw[1, 0, 0] = 1
    assert not missing_sections(raw).any()


def test_runs_are_interpolated_linearly_between_the_nearest_present_sections():
    raw = block([10, 0, 0, 40, 50])
    filled = fill_missing_sections(raw, missing_sections(raw))
    assert filled[:, 0, 0].tolist() == [10, 20, 30, 40, 50]
    assert raw[1].max() == 0  # the input is not modified


def test_ends_copy_the_one_neighbour_and_padding_is_never_a_source():
    raw = block([0, 0, 20, 0, 40, 0])
    missing = missing_sections(raw, slice(1, 5))  # sections 0 and 5 are padding
    filled = fill_missing_sections(raw, missing)
    assert filled[:, 0, 0].tolist() == [0, 20, 20, 30, 40, 0]


def test_nothing_missing_or_nothing_to_fill_from_returns_the_block():
    raw = block([10, 20])
    assert fill_missing_sections(raw, missing_sections(raw)) is raw
    black = block([0, 0])
    assert fill_missing_sections(black, missing_sections(black)) is black


def test_interpolation_is_per_voxel():
    raw = np.zeros((3, 1, 2), np.uint8)
    raw[0] = [[0, 100]]
    raw[2] = [[100, 200]]
    raw[0, 0, 0] = 2  # present: not all black
    filled = fill_missing_sections(raw, missing_sections(raw))
    assert filled[1].tolist() == [[51, 150]]
