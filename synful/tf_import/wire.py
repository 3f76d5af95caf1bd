"""The protocol-buffer wire format, read only: just enough to decode TensorFlow's checkpoint
index entries (``BundleHeaderProto``, ``BundleEntryProto``) without the protobuf package.

:func:`fields` turns a message's bytes into ``{field number: [values]}``: varints as ints,
length-delimited fields as bytes (a nested message is decoded by calling :func:`fields` on
them), fixed32 / fixed64 as unsigned ints.
"""

from __future__ import annotations

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """Bytes that are not a valid protocol-buffer message."""


def varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the unsigned varint at ``pos``."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def signed64(value: int) -> int:
    """A varint read as a two's-complement int64 (protobuf ``int64`` / ``int32``)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


def fields(data: bytes) -> dict[int, list]:
    """All fields of one message, in order of appearance per field number.

    Raises:
        WireError: for truncated data or a wire type protobuf 3 does not write.
    """
    out: dict[int, list] = {}
    pos = 0
    while pos < len(data):
        key, pos = varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, pos = varint(data, pos)
        elif wire_type == LENGTH_DELIMITED:
            length, pos = varint(data, pos)
            if pos + length > len(data):
                raise WireError("truncated length-delimited field")
            value, pos = bytes(data[pos : pos + length]), pos + length
        elif wire_type in (FIXED32, FIXED64):
            size = 4 if wire_type == FIXED32 else 8
            if pos + size > len(data):
                raise WireError("truncated fixed-size field")
            value, pos = int.from_bytes(data[pos : pos + size], "little"), pos + size
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        out.setdefault(number, []).append(value)
    return out


def first(message: dict[int, list], number: int, default=None):
    """The last value of a singular field (protobuf's rule for repeated singular fields)."""
    values = message.get(number)
    return values[-1] if values else default
