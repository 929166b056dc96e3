"""Why the bytes of a request are not a valid protobuf message, named by field path.

The protobuf runtime only says "Error parsing message with type X"; a caller needs to know which field was wrong.
``explain_decode_error`` walks the wire format against the message's descriptor and names the first problem: a
string field that is not UTF-8, a length or varint running past the end, or an unsupported wire type."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
MAX_DEPTH = 64  # the protobuf runtime's recursion limit is 100; requests nest 3 levels at most


class _Malformed(Exception):
    def __init__(self, path: str, problem: str):
        path = path or "request"  # a problem of the message itself, not of one field
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def _varint(data: bytes, pos: int, path: str) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise _Malformed(path, f"truncated varint at byte {pos}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise _Malformed(path, f"varint longer than 10 bytes at byte {pos}")


def _walk(descriptor: Descriptor, data: bytes, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Malformed(path, f"nested more than {MAX_DEPTH} levels")
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos, path)
        number, wire = key >> 3, key & 7
        field = descriptor.fields_by_number.get(number)
        name = field.name if field else f"<field {number}>"
        where = f"{path}.{name}" if path else name
        if number == 0:
            raise _Malformed(path, f"field number 0 at byte {pos}")
        if wire == _VARINT:
            _, pos = _varint(data, pos, where)
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
            if pos > len(data):
                raise _Malformed(where, "truncated fixed-width value")
        elif wire == _LENGTH:
            size, pos = _varint(data, pos, where)
            end = pos + size
            if end > len(data):
                raise _Malformed(where, f"length {size} runs past the end of the message")
            chunk = data[pos:end]
            pos = end
            if field is None:
                continue
            if field.type == FieldDescriptor.TYPE_STRING:
                try:
                    chunk.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _Malformed(where, f"not valid UTF-8 (byte {exc.start} of the string)") from None
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                _walk(field.message_type, chunk, where, depth + 1)
        else:
            raise _Malformed(where, f"unsupported wire type {wire}")


def explain_decode_error(descriptor: Descriptor, data: bytes) -> str:
    """'<field path>: <problem>' (e.g. 'context.query: not valid UTF-8 ...') for the first problem found in
    ``data`` as a ``descriptor`` message; 'request: ...' for a problem of the message as a whole, or when the walk
    finds none (the runtime refused it for a reason this walk does not check)."""
    try:
        _walk(descriptor, data, "", 0)
    except _Malformed as exc:
        return str(exc)
    return f"request: not a valid {descriptor.full_name} message"
