"""Brain files: named arrays plus JSON metadata in safetensors, versioned, checksummed, written
atomically.

This module knows arrays only (``dict`` name -> numpy array, plus a JSON-able ``meta``); a brain
gives and takes them with ``Brain.to_arrays`` / ``Brain.from_arrays`` (``Brain.save``,
``Brain.load``, ``Brain.to_bytes``, ``Brain.from_bytes`` call this module). The usual name is
``brain.safetensors`` (:data:`SUFFIX`).

Format, version 3: a `safetensors <https://huggingface.co/docs/safetensors>`_ file (readable
without Melvin: ``safetensors.numpy.load_file``), one tensor per array, and in the
safetensors metadata (a string -> string map)::

    format   "melvin-brain"
    version  "3"
    meta     Melvin's metadata, JSON (sort_keys)
    sha256   hex SHA-256 of "melvin-brain", the version, ``meta`` and then, for each tensor in
             name order, its name, dtype and shape (one JSON line) and its bytes (:func:`digest`)

safetensors checks that the header covers the file exactly (a truncated or extended file is
refused); the checksum catches a changed byte anywhere in the tensors or the metadata.

Versions 1 and 2 (Melvin's own layout, magic ``b"MELVBRN\\x00"``) are still read, recognised
by their first bytes whatever the file's name (:mod:`core.brain.file_legacy`).

Only plain numeric dtypes are accepted (no objects, no pickle). A file that is truncated,
corrupt, of an unknown version, or not a brain file raises :class:`BrainFileError` (a
``ValueError``) with a one-line message and is never modified. Writing goes to a temporary file
in the same directory, is flushed to disk, then renamed over the target with ``os.replace``, so
a reader sees either the old file or the new one.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np
import safetensors.numpy as stn

from core.atomic import atomic_write
from core.brain import file_legacy
from core.brain.file_legacy import MAGIC, V1_NAMES  # noqa: F401  (part of this module's API)

FORMAT = "melvin-brain"
VERSION = 3
#: Versions :func:`decode` reads (1 and 2 through :mod:`core.brain.file_legacy`).
READABLE = file_legacy.READABLE + (VERSION,)
#: The file name a run folder gives its brain.
SUFFIX = ".safetensors"
_DTYPES = file_legacy.DTYPES


class BrainFileError(ValueError):
    """The file is not a readable brain file (of a version this Melvin reads); it has not been
    modified."""


def _storable(name: str, arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if arr.dtype.str not in _DTYPES:
        raise TypeError(f"array {name!r}: dtype {arr.dtype} is not storable")
    return arr


def digest(meta_json: str, arrays: dict[str, np.ndarray], version: int = VERSION) -> str:
    """Hex SHA-256 over the format, ``version``, ``meta_json`` and every array (name order):
    a JSON line ``[name, dtype, shape]``, then the array's C-order bytes."""
    h = hashlib.sha256(f"{FORMAT}\n{version}\n{meta_json}\n".encode())
    for name in sorted(arrays):
        arr = arrays[name]
        h.update(json.dumps([name, arr.dtype.str, list(arr.shape)]).encode() + b"\n")
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def encode(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """The file's bytes for ``meta`` (JSON-able) and ``arrays`` (name -> numeric array)."""
    arrays = {str(name): _storable(name, arr) for name, arr in arrays.items()}
    meta_json = json.dumps(meta, sort_keys=True)
    return stn.save(arrays, metadata={"format": FORMAT, "version": str(VERSION),
                                      "meta": meta_json, "sha256": digest(meta_json, arrays)})


def _header(blob: bytes) -> dict:
    (n,) = struct.unpack_from("<Q", blob)
    return json.loads(blob[8:8 + n]).get("__metadata__") or {}


def decode(blob: bytes, source: str = "<bytes>") -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of :func:`encode`: ``(meta, arrays)`` under today's names, whatever the file's
    version; every check failure raises :class:`BrainFileError`."""
    blob = bytes(blob)
    if blob[:len(MAGIC)] == MAGIC:
        return file_legacy.decode(blob, source, BrainFileError)
    try:
        arrays = stn.load(blob)
        info = _header(blob)
    except Exception as exc:  # safetensors' errors (SafetensorError, dtype, JSON) alike
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BrainFileError(f"{source}: not a brain file, or truncated ({len(blob)} bytes; "
                             f"safetensors: {text})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise BrainFileError(f"{source}: a safetensors file but not a Melvin brain file "
                             f"(no format={FORMAT!r} in its metadata)")
    version = info.get("version")
    if version != str(VERSION):
        raise BrainFileError(f"{source}: brain file version {str(version)[:20]}, this Melvin "
                             f"reads versions {', '.join(map(str, READABLE))}")
    for name, arr in arrays.items():
        if arr.dtype.str not in _DTYPES:
            raise BrainFileError(f"{source}: array {name!r} has dtype {arr.dtype}")
    meta_json = info.get("meta")
    if not isinstance(meta_json, str) or info.get("sha256") != digest(meta_json, arrays):
        raise BrainFileError(f"{source}: checksum mismatch (file tampered with or corrupt)")
    try:
        meta = json.loads(meta_json)
    except json.JSONDecodeError as exc:
        raise BrainFileError(f"{source}: unreadable metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise BrainFileError(f"{source}: metadata is not a JSON object")
    return meta, arrays


def write(path: str | os.PathLike, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: temporary file in the target's directory, fsync, ``os.replace``."""
    atomic_write(path, encode(meta, arrays))


def read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify a brain file (any readable version); raises :class:`BrainFileError` on
    any defect."""
    with open(path, "rb") as fh:
        blob = fh.read()
    return decode(blob, str(path))
