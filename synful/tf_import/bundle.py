"""Read a TensorFlow checkpoint (the V2 "tensor bundle" that ``tf.train.Saver`` writes)
without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` (a sorted table, :mod:`.sstable`, whose empty key
holds a ``BundleHeaderProto`` and whose other keys are variable names holding
``BundleEntryProto``s) and ``PREFIX.data-NNNNN-of-MMMMM`` (the tensors' raw bytes, row-major,
in the header's byte order). An entry gives dtype, shape, shard, offset, size and the masked
CRC-32C of the bytes; every read is checked against size and checksum. Field numbers are those
of ``tensorflow/core/protobuf/tensor_bundle.proto`` and ``tensor_shape.proto``. Partitioned
(sliced) variables and string tensors are listed but cannot be read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np

from ..errors import SynfulError
from .sstable import TableError, read_table, unmask_crc
from .wire import WireError, fields, first, signed64

#: TensorFlow DataType enum (types.proto) -> numpy dtype, for the types a model may hold
DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}
DTYPE_NAMES = {7: "string", 14: "bfloat16", 20: "resource", 21: "variant"}
#: the newest tensor-bundle format version this reader knows (TensorFlow's kTensorBundleVersion)
BUNDLE_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One saved tensor: where its bytes are and what they are."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None
    sliced: bool

    @property
    def dtype_name(self) -> str:
        if self.dtype in DTYPES:
            return np.dtype(DTYPES[self.dtype]).name
        return DTYPE_NAMES.get(self.dtype, f"dtype {self.dtype}")


def checkpoint_prefix(path: str | os.PathLike) -> Path:
    """The checkpoint prefix of ``path``: the path itself, or with ``.index``, ``.meta`` or
    ``.data-*`` removed."""
    path = Path(path)
    name = path.name
    for suffix in (".index", ".meta"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    if ".data-" in name:
        return path.with_name(name[: name.rindex(".data-")])
    return path


def _entry(name: str, value: bytes) -> Entry:
    message = fields(value)
    dims = []
    shape = fields(first(message, 2, b""))
    for dim in shape.get(2, []):
        size = signed64(first(fields(dim), 1, 0))
        dims.append(size)
    return Entry(
        name=name,
        dtype=first(message, 1, 0),
        shape=tuple(dims),
        shard=first(message, 3, 0),
        offset=signed64(first(message, 4, 0)),
        size=signed64(first(message, 5, 0)),
        crc32c=first(message, 6),
        sliced=bool(message.get(7)),
    )


class TFCheckpoint:
    """The variables of a TensorFlow V2 checkpoint.

    Args:
        prefix: the checkpoint prefix (``.../train_net_checkpoint_390000``) or one of its files.

    Raises:
        SynfulError: (the index file, problem) for a missing, foreign, corrupt or newer-format
            checkpoint.
    """

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = checkpoint_prefix(prefix)
        self.index_path = self.prefix.with_name(self.prefix.name + ".index")
        if not self.index_path.is_file():
            raise SynfulError(
                self.index_path, "no such TensorFlow checkpoint index (give the checkpoint prefix)"
            )
        try:
            items = list(read_table(self.index_path.read_bytes()))
        except TableError as exc:
            raise SynfulError(
                self.index_path, f"not a readable TensorFlow checkpoint index: {exc}"
            ) from None
        if not items or items[0][0] != b"":
            raise SynfulError(self.index_path, "TensorFlow checkpoint index without a header entry")
        try:
            header = fields(items[0][1])
            version = fields(first(header, 3, b""))
            self.entries = {k.decode("utf-8"): _entry(k.decode("utf-8"), v) for k, v in items[1:]}
        except (WireError, UnicodeDecodeError) as exc:
            raise SynfulError(
                self.index_path, f"corrupt TensorFlow checkpoint index ({exc})"
            ) from None
        self.num_shards = first(header, 1, 1)
        self.byte_order = ">" if first(header, 2, 0) == 1 else "<"
        if first(version, 2, 0) > BUNDLE_VERSION:
            raise SynfulError(
                self.index_path,
                f"checkpoint format needs a reader of version {first(version, 2, 0)}, this one is {BUNDLE_VERSION}",
            )

    def names(self) -> list[str]:
        """All variable names, sorted."""
        return sorted(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name].shape

    def data_path(self, shard: int) -> Path:
        return self.prefix.with_name(
            f"{self.prefix.name}.data-{shard:05d}-of-{self.num_shards:05d}"
        )

    def read(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a numpy array (native byte order), checked against its size
        and checksum.

        Raises:
            SynfulError: for an unknown name, an unreadable type, a missing or short data file
                or a checksum mismatch.
        """
        if name not in self.entries:
            raise SynfulError(self.index_path, f"no variable {name!r} in the checkpoint")
        entry = self.entries[name]
        if entry.sliced:
            raise SynfulError(
                self.index_path, f"variable {name} is saved in slices (partitioned), not supported"
            )
        if entry.dtype not in DTYPES:
            raise SynfulError(
                self.index_path,
                f"variable {name} has type {entry.dtype_name}, not a numeric tensor",
            )
        dtype = np.dtype(DTYPES[entry.dtype]).newbyteorder(self.byte_order)
        count = int(np.prod(entry.shape, dtype=np.int64)) if entry.shape else 1
        if min(entry.shape, default=0) < 0 or count * dtype.itemsize != entry.size:
            raise SynfulError(
                self.index_path,
                f"variable {name}: {entry.size} bytes do not hold a {entry.dtype_name} tensor of shape {list(entry.shape)}",
            )
        path = self.data_path(entry.shard)
        try:
            with open(path, "rb") as f:
                f.seek(entry.offset)
                raw = f.read(entry.size)
        except OSError as exc:
            raise SynfulError(
                path, f"cannot read the checkpoint data ({exc.strerror or exc})"
            ) from None
        if len(raw) != entry.size:
            raise SynfulError(path, f"checkpoint data file is truncated (variable {name})")
        if entry.crc32c is not None and google_crc32c.value(raw) != unmask_crc(entry.crc32c):
            raise SynfulError(
                path, f"checksum mismatch in variable {name} (corrupt checkpoint data)"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))
