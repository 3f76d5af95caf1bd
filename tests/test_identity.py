"""Content identities of inputs (synful.identity)."""

import json

import numpy as np
import pytest
import zarr

from synful.errors import SynfulError
from synful.identity import creation_id_of, file_identity, recipe_identity, store_identity


def test_recipe_identity_is_canonical():
    assert recipe_identity({"a": 1, "b": [1, 2]}) == recipe_identity({"b": [1, 2], "a": 1})
    assert recipe_identity({"a": 1}) != recipe_identity({"a": 2})


def test_file_identity_follows_content(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    first = file_identity(path)
    path.write_bytes(b"two")
    assert file_identity(path) != first
    with pytest.raises(SynfulError, match="cannot read"):
        file_identity(tmp_path / "missing")


def store(path, creation_id, shape=(4, 4)):
    group = zarr.open_group(str(path), mode="w")
    group.attrs["synful"] = {"kind": "sample", "creation_id": creation_id}
    group.create_array("raw", data=np.zeros(shape, np.uint8))
    group.create_array("neuron_ids", data=np.zeros(shape, np.uint64))


def test_store_identity_is_content_not_path(tmp_path):
    store(tmp_path / "a.zarr", "id1")
    store(tmp_path / "b.zarr", "id1")
    assert store_identity(tmp_path / "a.zarr") == store_identity(tmp_path / "b.zarr")
    assert creation_id_of(tmp_path / "a.zarr") == "id1"
    store(tmp_path / "b.zarr", "id2")  # rewritten: a new creation id
    assert store_identity(tmp_path / "a.zarr") != store_identity(tmp_path / "b.zarr")
    store(tmp_path / "c.zarr", "id1", shape=(4, 5))  # same id, other metadata
    assert store_identity(tmp_path / "a.zarr") != store_identity(tmp_path / "c.zarr")


def test_store_identity_of_named_nodes(tmp_path):
    store(tmp_path / "a.zarr", "id1")
    raw_only = store_identity(tmp_path / "a.zarr", "raw")
    zarr.open_group(str(tmp_path / "a.zarr"), mode="a").create_array(
        "masks/training", data=np.ones((4, 4), np.uint8)
    )
    assert store_identity(tmp_path / "a.zarr", "raw") == raw_only
    with pytest.raises(SynfulError, match="not a zarr store or array"):
        store_identity(tmp_path / "a.zarr", "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynfulError, match="not a zarr store"):
        store_identity(tmp_path / "empty")
    assert json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())


def test_store_identity_never_lists_chunks(tmp_path, monkeypatch):
    """Arrays are not descended into: the chunk directories are never listed."""
    from pathlib import Path

    store(tmp_path / "a.zarr", "id1", shape=(64, 64))
    listed = []
    iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: listed.append(self) or iterdir(self))
    store_identity(tmp_path / "a.zarr")
    assert listed == [tmp_path / "a.zarr"]
