"""MongoDB wire protocol: a 16-byte header (length, request id, response-to, opcode) followed by
OP_MSG (2013) or legacy OP_QUERY (2004); the reply answers the request id."""

from __future__ import annotations

import struct

from .base import FULL, PARTIAL, STRONG, Guess

SLUG = "proto.mongodb"
# probe()'s best while the server has sent nothing: a request without the reply to it
CLIENT_ONLY_CEILING = STRONG
OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013
OPCODES = {OP_QUERY: "OP_QUERY", OP_COMPRESSED: "OP_COMPRESSED", OP_MSG: "OP_MSG"}
MAX_MESSAGE = 48 * 1000 * 1000


def _header(data: bytes) -> tuple[int, int, int, int] | None:
    if len(data) < 16:
        return None
    length, request, response_to, opcode = struct.unpack_from("<iiii", data)
    if not 21 <= length <= MAX_MESSAGE:
        return None
    return length, request, response_to, opcode


def _first_key(doc: bytes) -> str | None:
    # BSON: int32 size, then elements (type, cstring name, value); the first key is the command.
    if len(doc) < 6:
        return None
    end = doc.find(b"\0", 5, 5 + 128)
    return doc[5:end].decode("utf-8", "replace") if end > 5 else None


def _command(data: bytes, opcode: int) -> str | None:
    body = data[16:]
    if opcode == OP_MSG and len(body) >= 5 and body[4] == 0:
        return _first_key(body[5:])
    if opcode == OP_QUERY and len(body) > 4:
        end = body.find(b"\0", 4, 4 + 256)
        if end > 4:
            return _first_key(body[end + 1 + 8 :])
    return None


def possible(client: bytes, server: bytes) -> bool:
    """Whether more bytes could still make this MongoDB (see ``could_become``): the client
    opens with a message header (length, request id, response-to 0, a request opcode)."""
    if not client:
        return not server
    if len(client) >= 4 and not 21 <= struct.unpack_from("<i", client)[0] <= MAX_MESSAGE:
        return False
    if len(client) >= 12 and struct.unpack_from("<i", client, 8)[0] != 0:
        return False
    return len(client) < 16 or struct.unpack_from("<i", client, 12)[0] in OPCODES


def probe(client: bytes, server: bytes) -> Guess | None:
    head = _header(client)
    if head is None:
        return None
    length, request, response_to, opcode = head
    if response_to != 0 or opcode not in OPCODES:
        return None
    details = [("mongodb.opcode", OPCODES[opcode])]
    command = _command(client, opcode)
    if command:
        details.append(("mongodb.command", command))
    score = STRONG if len(client) >= length else PARTIAL
    reply = _header(server)
    if reply is not None and reply[2] == request and reply[3] in (OP_REPLY, OP_MSG, OP_COMPRESSED):
        score = FULL
    return Guess(protocol=SLUG, confidence=score, details=tuple(details))
