"""Brain files: named arrays plus JSON metadata, versioned, checksummed, written atomically.

This module knows arrays only (``dict`` name -> numpy array, plus a JSON-able ``meta``); a brain
gives and takes them with ``Brain.to_arrays`` / ``Brain.from_arrays`` (``Brain.save``,
``Brain.load``, ``Brain.to_bytes``, ``Brain.from_bytes`` call this module).

Format, version 2 (all integers little-endian)::

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
...); :func:`decode` reads it and renames its arrays to version 2's (``V1_NAMES``).

Only plain numeric dtypes are accepted (no objects, no pickle). A file that is truncated,
corrupt, of an unknown version, or not a brain file raises :class:`BrainFileError` (a
``ValueError``) and is never modified. Writing goes to a temporary file in the same directory,
is flushed to disk, then renamed over the target with ``os.replace``, so a reader sees either the
old file or the new one.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np

from core.atomic import atomic_write

MAGIC = b"MELVBRN\x00"
VERSION = 2
#: Versions :func:`decode` reads.
READABLE = (1, 2)
#: Version 1's array names -> version 2's (one name per quantity: threshold_ratio, ...).
V1_NAMES = {"exec/exec_success": "exec/success_rate", "exec/exec_threshold": "exec/threshold_ratio"}
V1_NAMES.update({f"{table}/{old}": f"{table}/{new}" for table in ("bytes", "genes")
                 for old, new in (("ptok", "tokens"), ("plen", "length"), ("phash", "gram_hash"),
                                  ("pcount", "count"), ("plast", "last_seen"),
                                  ("pact", "activation"), ("pok", "n_ok"), ("pcrash", "n_crash"),
                                  ("psucc", "success_rate"), ("pthr", "threshold_ratio"),
                                  ("edst", "edge_node"), ("ew", "edge_weight"),
                                  ("cand", "candidates"), ("hist", "history"))})
_ALIGN = 64
_PREFIX = struct.Struct("<8sII")
_DIGEST = 32
_DTYPES = {"|u1", "|i1", "|b1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8"}


class BrainFileError(ValueError):
    """The file is not a readable brain file (of a version this Melvin reads); it has not been
    modified."""


def _pad(n: int) -> int:
    return (-n) % _ALIGN


def encode(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """The file's bytes for ``meta`` (JSON-able) and ``arrays`` (name -> numeric array)."""
    entries = []
    chunks = []
    offset = 0
    for name, arr in arrays.items():
        arr = np.ascontiguousarray(arr)
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        arr = arr.astype(dt, copy=False)
        if dt.str not in _DTYPES:
            raise TypeError(f"array {name!r}: dtype {arr.dtype} is not storable")
        raw = arr.tobytes()
        entries.append({"name": name, "dtype": dt.str, "shape": list(arr.shape),
                        "offset": offset, "nbytes": len(raw)})
        chunks.append(raw)
        chunks.append(b"\x00" * _pad(len(raw)))
        offset += len(raw) + _pad(len(raw))
    header = json.dumps({"meta": meta, "arrays": entries}, sort_keys=True).encode()
    head = _PREFIX.pack(MAGIC, VERSION, len(header)) + header
    body = head + b"\x00" * _pad(len(head)) + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def decode(blob: bytes, source: str = "<bytes>") -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of :func:`encode`: ``(meta, arrays)`` under version 2's names, whatever the
    file's version; every check failure raises :class:`BrainFileError`."""
    if len(blob) < _PREFIX.size + _DIGEST:
        raise BrainFileError(f"{source}: truncated ({len(blob)} bytes) or not a brain file")
    magic, version, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise BrainFileError(f"{source}: not a brain file (bad magic {magic!r})")
    if version not in READABLE:
        raise BrainFileError(f"{source}: brain file version {version}, this Melvin reads "
                             f"versions {', '.join(map(str, READABLE))}")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise BrainFileError(f"{source}: checksum mismatch (file truncated or corrupt)")
    start = _PREFIX.size
    if start + hlen > len(body):
        raise BrainFileError(f"{source}: header runs past the end of the file")
    try:
        header = json.loads(body[start:start + hlen].decode())
        meta = header["meta"]
        entries = header["arrays"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BrainFileError(f"{source}: unreadable header ({exc})") from None
    data = start + hlen + _pad(start + hlen)
    arrays: dict[str, np.ndarray] = {}
    try:
        for e in entries:
            dt = np.dtype(e["dtype"]) if e["dtype"] in _DTYPES else None
            if dt is None:
                raise BrainFileError(f"{source}: array {e['name']!r} has dtype {e['dtype']!r}")
            shape = tuple(int(x) for x in e["shape"])
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            lo = data + int(e["offset"])
            if nbytes != e["nbytes"] or min(shape, default=0) < 0 or lo < data \
                    or lo + nbytes > len(body):
                raise BrainFileError(f"{source}: array {e['name']!r} lies outside the file")
            arrays[str(e["name"])] = np.frombuffer(body, dt, nbytes // dt.itemsize if dt.itemsize
                                                   else 0, lo).reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BrainFileError):
            raise
        raise BrainFileError(f"{source}: bad array directory ({exc})") from None
    if version == 1:
        arrays = {V1_NAMES.get(name, name): arr for name, arr in arrays.items()}
    return meta, arrays


def write(path: str | os.PathLike, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: temporary file in the target's directory, fsync, ``os.replace``."""
    atomic_write(path, encode(meta, arrays))


def read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify a brain file; raises :class:`BrainFileError` on any defect."""
    with open(path, "rb") as fh:
        blob = fh.read()
    return decode(blob, str(path))
