"""Reading brain files of versions 1 and 2 (Melvin's own format before safetensors).

:mod:`core.brain.file` writes version 3 (safetensors) and hands a blob that starts with
:data:`MAGIC` to :func:`decode` here, whatever the file's name. Version 2's layout (all
integers little-endian)::

    offset  size  content
    0       8     magic b"MELVBRN\\x00"
    8       4     uint32 format version (2)
    12      4     uint32 H, length of the header
    16      H     header, UTF-8 JSON: {"meta": {...}, "arrays": [{"name", "dtype", "shape",
                  "offset", "nbytes"}, ...]}; offsets are relative to the data section
    ...     pad   zero bytes up to a multiple of 64
    D       ...   data section: each array's C-order bytes at its offset (64-byte aligned)
    end-32  32    SHA-256 of every byte before it

Version 1 is the same layout with older array names (``exec/exec_threshold``, ``genes/pthr``,
...); :func:`decode` renames them to today's (``V1_NAMES``). Pattern tables of these versions
hold every slot up to the table's capacity; ``PatternTable.from_arrays`` reads both forms.
"""
from __future__ import annotations

import hashlib
import json
import struct

import numpy as np

MAGIC = b"MELVBRN\x00"
#: Versions :func:`decode` reads.
READABLE = (1, 2)
#: Version 1's array names -> today's (one name per quantity: threshold_ratio, ...).
V1_NAMES = {"exec/exec_success": "exec/success_rate", "exec/exec_threshold": "exec/threshold_ratio"}
V1_NAMES.update({f"{table}/{old}": f"{table}/{new}" for table in ("bytes", "genes")
                 for old, new in (("ptok", "tokens"), ("plen", "length"), ("phash", "gram_hash"),
                                  ("pcount", "count"), ("plast", "last_seen"),
                                  ("pact", "activation"), ("pok", "n_ok"), ("pcrash", "n_crash"),
                                  ("psucc", "success_rate"), ("pthr", "threshold_ratio"),
                                  ("edst", "edge_node"), ("ew", "edge_weight"),
                                  ("cand", "candidates"), ("hist", "history"))})
DTYPES = {"|u1", "|i1", "|b1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8"}
_ALIGN = 64
_PREFIX = struct.Struct("<8sII")
_DIGEST = 32


def _pad(n: int) -> int:
    return (-n) % _ALIGN


def decode(blob: bytes, source: str, error: type[ValueError]) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a version 1 or 2 file, under today's names; every check failure
    raises ``error`` (``core.brain.file.BrainFileError``) with a one-line message."""
    if len(blob) < _PREFIX.size + _DIGEST:
        raise error(f"{source}: truncated ({len(blob)} bytes) or not a brain file")
    magic, version, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise error(f"{source}: not a brain file (bad magic {magic!r})")
    if version not in READABLE:
        raise error(f"{source}: brain file version {version} in Melvin's own layout, this "
                    f"Melvin reads versions 1 and 2 of it (and 3, in safetensors)")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise error(f"{source}: checksum mismatch (file truncated or corrupt)")
    start = _PREFIX.size
    if start + hlen > len(body):
        raise error(f"{source}: header runs past the end of the file")
    try:
        header = json.loads(body[start:start + hlen].decode())
        meta = header["meta"]
        entries = header["arrays"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise error(f"{source}: unreadable header ({exc})") from None
    data = start + hlen + _pad(start + hlen)
    arrays: dict[str, np.ndarray] = {}
    try:
        for e in entries:
            dt = np.dtype(e["dtype"]) if e["dtype"] in DTYPES else None
            if dt is None:
                raise error(f"{source}: array {e['name']!r} has dtype {e['dtype']!r}")
            shape = tuple(int(x) for x in e["shape"])
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            lo = data + int(e["offset"])
            if nbytes != e["nbytes"] or min(shape, default=0) < 0 or lo < data \
                    or lo + nbytes > len(body):
                raise error(f"{source}: array {e['name']!r} lies outside the file")
            arrays[str(e["name"])] = np.frombuffer(body, dt, nbytes // dt.itemsize if dt.itemsize
                                                   else 0, lo).reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, error):
            raise
        raise error(f"{source}: bad array directory ({exc})") from None
    if version == 1:
        arrays = {V1_NAMES.get(name, name): arr for name, arr in arrays.items()}
    return meta, arrays
