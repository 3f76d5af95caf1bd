"""BlockwiseWork.prepare: resume the same recipe, refuse another, restart on request."""

import pytest

from synful.blockwise import BlockwiseTask, BlockwiseWork, DoneMarkers
from synful.blockwise.work import STALE
from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi

TASK = BlockwiseTask(Roi((0, 0, 0), (8, 8, 8)), (4, 8, 8), (0, 0, 0), Coordinate(1, 1, 1))


def half_done(path, recipe):
    work = BlockwiseWork(path, TASK, recipe)
    assert work.prepare() is False
    markers = DoneMarkers(path)
    markers.mark([0])
    markers.close()
    return work


@pytest.mark.parametrize("restart", [False, STALE])
def test_the_same_recipe_resumes(tmp_path, restart):
    half_done(tmp_path / "w", {"checkpoint": "a"})
    assert BlockwiseWork(tmp_path / "w", TASK, {"checkpoint": "a"}).prepare(restart=restart)
    markers = DoneMarkers(tmp_path / "w")
    assert markers.done_ids() == {0}
    markers.close()


def test_another_recipe_is_refused_unless_restarted(tmp_path):
    half_done(tmp_path / "w", {"checkpoint": "a"})
    with pytest.raises(SynfulError, match="checkpoint differ.*--restart"):
        BlockwiseWork(tmp_path / "w", TASK, {"checkpoint": "b"}).prepare()
    # stale: another recipe starts fresh, as --restart does
    assert BlockwiseWork(tmp_path / "w", TASK, {"checkpoint": "b"}).prepare(restart=STALE) is False
    markers = DoneMarkers(tmp_path / "w")
    assert markers.done_ids() == set() and markers.identity() is not None
    markers.close()


def test_restart_discards_even_the_same_recipe(tmp_path):
    half_done(tmp_path / "w", {"checkpoint": "a"})
    assert BlockwiseWork(tmp_path / "w", TASK, {"checkpoint": "a"}).prepare(restart=True) is False
    markers = DoneMarkers(tmp_path / "w")
    assert markers.done_ids() == set()
    markers.close()
