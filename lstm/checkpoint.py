"""Checkpoints without pickle: arrays in an .npz read with allow_pickle=False, metadata as JSON
stored inside it. Written atomically (temporary file, fsync, rename), so a crash mid-write
leaves the previous checkpoint intact."""
import glob
import hashlib
import json
import os
import pathlib
import tempfile
import zipfile

import numpy as np

FORMAT = "tinygraph-checkpoint-2"          # 2: with a SHA-256 digest of the arrays
OLD_FORMATS = ("tinygraph-checkpoint-1",)  # still read (they carry no digest)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, tampered with, or for another model."""


def save_checkpoint(path, arrays, meta):
    """Write {name: array} and a JSON-serialisable `meta` dict to `path` atomically."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {f"array/{k}": np.asarray(v) for k, v in arrays.items()}
    meta = {"format": FORMAT, **meta, "digest": _digest(payload)}
    payload["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    for stale in path.parent.glob(f"{glob.escape(path.name)}*.tmp"):
        stale.unlink(missing_ok=True)    # left by a writer killed mid-write
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())    # mkstemp makes it private; a checkpoint is not
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path):
    """(arrays, meta) from a checkpoint; never unpickles anything."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":     # an .npz is a zip archive
            raise CheckpointError(f"{path} is not a checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "meta" not in data.files:
                raise CheckpointError(f"{path} is not a {FORMAT} file (it has no metadata)")
            meta = json.loads(bytes(data["meta"]).decode())
            payload = {k: data[k] for k in data.files if k.startswith("array/")}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError,
            json.JSONDecodeError, UnicodeDecodeError) as e:
        reason = ("it holds pickled Python objects, which are never loaded"
                  if "pickle" in str(e) else f"{type(e).__name__}: {e}")
        raise CheckpointError(f"{path} is not a readable checkpoint ({reason})") from None
    if not isinstance(meta, dict) or meta.get("format") not in (FORMAT, *OLD_FORMATS):
        raise CheckpointError(f"{path} is not a {FORMAT} file")
    if meta["format"] == FORMAT and meta.get("digest") != _digest(payload):
        raise CheckpointError(f"{path} does not match its digest: its arrays were modified or "
                              "corrupted after it was written")
    return {k[len("array/"):]: v for k, v in payload.items()}, meta


def _digest(payload):
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(payload):
        array = np.ascontiguousarray(payload[name])
        h.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        h.update(array.reshape(-1).view(np.uint8))     # the bytes, without a copy
    return h.hexdigest()
