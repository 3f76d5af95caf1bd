"""The sorted-table file format that TensorFlow uses for a checkpoint's ``.index`` (its
``tensorflow/core/lib/io`` table, the LevelDB table format), read only.

Layout: data blocks, a meta-index block, an index block and a 48-byte footer (the meta-index
and index block handles as varint pairs, zero padding, the magic number). Every block is
followed by a 1-byte compression type and the masked CRC-32C of the block and that byte. A
block holds prefix-compressed entries (shared key length, unshared length, value length as
varints, the unshared key bytes, the value) and ends with its restart offsets (fixed32 each)
and their count. The index block maps the last key of each data block to that block's handle.
TensorFlow writes checkpoint indexes without compression; a compressed block is refused.
"""

from __future__ import annotations

from collections.abc import Iterator

import google_crc32c

from .wire import WireError, varint

FOOTER_SIZE = 48
MAGIC = 0xDB4775248B80FB57
BLOCK_TRAILER_SIZE = 5
NO_COMPRESSION = 0
_MASK_DELTA = 0xA282EAD8


class TableError(ValueError):
    """A file that is not a readable table (the message says what is wrong)."""


def unmask_crc(masked: int) -> int:
    """Undo the CRC masking of LevelDB / TensorFlow (rotate right by 15 after subtracting a
    constant)."""
    rotated = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


def _handle(data: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = varint(data, pos)
    size, pos = varint(data, pos)
    return offset, size, pos


def _block(data: bytes, offset: int, size: int) -> bytes:
    end = offset + size
    if offset < 0 or end + BLOCK_TRAILER_SIZE > len(data):
        raise TableError(f"block at byte {offset} runs past the end of the file")
    contents = data[offset:end]
    kind = data[end]
    stored = int.from_bytes(data[end + 1 : end + BLOCK_TRAILER_SIZE], "little")
    if google_crc32c.extend(google_crc32c.value(contents), bytes([kind])) != unmask_crc(stored):
        raise TableError(f"checksum mismatch in the block at byte {offset} (corrupt file)")
    if kind != NO_COMPRESSION:
        raise TableError(
            f"block at byte {offset} is compressed (type {kind}); checkpoint indexes are not"
        )
    return contents


def _entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise TableError("block too short")
    restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise TableError("block restart array runs past the block")
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = varint(block, pos)
        unshared, pos = varint(block, pos)
        length, pos = varint(block, pos)
        if shared > len(key) or pos + unshared + length > limit:
            raise TableError("bad block entry")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + length]
        pos += length


def read_table(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of a table file's contents, in key order.

    Raises:
        TableError: for a file that is not a table, a checksum mismatch or a compressed block.
    """
    if len(data) < FOOTER_SIZE:
        raise TableError("too short for a table footer")
    footer = data[-FOOTER_SIZE:]
    if int.from_bytes(footer[-8:], "little") != MAGIC:
        raise TableError("no table magic number at the end (not a TensorFlow checkpoint index)")
    try:
        _, _, pos = _handle(footer, 0)  # the meta-index block: empty in checkpoint indexes
        index_offset, index_size, _ = _handle(footer, pos)
        for _, value in _entries(_block(data, index_offset, index_size)):
            offset, size, _ = _handle(value, 0)
            yield from _entries(_block(data, offset, size))
    except WireError as exc:
        raise TableError(f"bad varint ({exc})") from None
