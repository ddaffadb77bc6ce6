"""pgvector's `vector` type as numpy arrays over asyncpg's binary protocol."""

from __future__ import annotations

import struct

import asyncpg
import numpy as np
import numpy.typing as npt

_HEADER = struct.Struct(">HH")


def encode_vector(vector: npt.ArrayLike) -> bytes:
    values = np.asarray(vector, dtype=">f4")
    return _HEADER.pack(values.shape[0], 0) + values.tobytes()


def vector_text(vector: npt.ArrayLike) -> str:
    """pgvector's text form, "[0.1,0.2,...]", for where the binary codec cannot go (arrays)."""
    return "[" + ",".join(map(str, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def decode_vector(data: bytes) -> npt.NDArray[np.float32]:
    dimensions, _ = _HEADER.unpack_from(data)
    return np.frombuffer(data, dtype=">f4", count=dimensions, offset=_HEADER.size).astype(
        np.float32
    )


async def register_vector_codec(conn: asyncpg.Connection) -> None:
    """Pool `init` hook: lets queries take and return `vector` values as numpy arrays."""
    await conn.set_type_codec(
        "vector", schema="public", encoder=encode_vector, decoder=decode_vector, format="binary"
    )
