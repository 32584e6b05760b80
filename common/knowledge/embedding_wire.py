"""The embedding service's wire format (common/knowledge/embedding_service.py), both sides.

Over a Unix socket, one request at a time per connection, each way a frame: a 4-byte
big-endian length, then that many bytes.

- request: the texts, a UTF-8 JSON array of strings;
- answer: one kind byte, then `V` + the vectors (texts x DIMENSION float32, little-endian,
  row after row) or `E` + a short UTF-8 reason (never the texts: they are creator content).

Plain stdlib: the gateway's side must not import NumPy (~15 MiB of RSS per worker).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import tempfile
from pathlib import Path

MAX_FRAME = 16 * 1024 * 1024
VECTORS = b"V"
ERROR = b"E"
_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next frame's payload. Raises asyncio.IncompleteReadError at the end of the stream."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes is over {MAX_FRAME}")
    return await reader.readexactly(length)


def default_socket_path() -> Path:
    """Where the gateways of this checkout, run by this user, find the one embedding service:
    one per user (a private folder) and per installed code (another version's service may
    speak another protocol or model)."""
    code = hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"agentlink-{os.getuid()}" / f"embedding-{code}.sock"
