"""Getting the Penn Treebank files: downloaded from their public source, checked against the
SHA-256 checksums shipped here, written atomically.

    python -m lstm data ptb --dir data/ptb

The files are Mikolov's "simple-examples" version, the ones the book's own `dataset/ptb.py`
downloads (from the tomsercu/lstm repository on GitHub). A file already there with the right
checksum is kept (the command is then a no-op); anything else that goes wrong is a DataError
that says what to do.
"""
import hashlib
import os
import pathlib
import tempfile
import urllib.error
import urllib.request

BASE_URL = "https://raw.githubusercontent.com/tomsercu/lstm/master/data/"
# name -> (SHA-256, bytes) of the published files.
PTB_FILES = {
    "ptb.train.txt": ("fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                      5_101_618),
    "ptb.valid.txt": ("c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                      399_782),
    "ptb.test.txt": ("dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
                     449_945),
}
CHUNK = 1 << 16


class DataError(ValueError):
    """A download that cannot be used: no network, a partial file, a wrong checksum."""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_ptb(folder, base_url=BASE_URL, log=print, timeout=60):
    """Make `folder` hold the three PTB files, verified; returns the folder's path."""
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder for the data")
    folder.mkdir(parents=True, exist_ok=True)
    for name, (checksum, size) in PTB_FILES.items():
        path = folder / name
        if path.exists():
            if sha256_of(path) != checksum:
                raise DataError(f"{path} is there but is not the published file (its SHA-256 "
                                "differs); move it away and run the command again")
            log(f"{path}: already there, checksum verified")
            continue
        _download(base_url.rstrip("/") + "/" + name, path, checksum, size, timeout)
        log(f"{path}: downloaded, checksum verified ({size:,} bytes)")
    return folder


def _download(url, path, checksum, size, timeout):
    """Fetch url into path: into a temporary file beside it first, renamed into place only
    once its size and checksum are right (an interrupted download leaves nothing behind)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        digest, received = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        digest.update(block)
                        out.write(block)
                        received += len(block)
            except urllib.error.HTTPError as e:
                raise DataError(f"could not download {url}: the server answered {e.code} "
                                f"{e.reason}") from None
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                if received:
                    raise DataError(f"the download of {url} stopped after {received:,} of "
                                    f"{size:,} bytes ({reason}); run the command again") from None
                raise DataError(f"could not download {url} ({reason}); check the network, or "
                                f"copy ptb.train.txt, ptb.valid.txt and ptb.test.txt into "
                                f"{path.parent} yourself") from None
            out.flush()
            os.fsync(out.fileno())
        if received != size:
            raise DataError(f"the download of {url} gave {received:,} bytes, not {size:,}; run "
                            "the command again")
        if digest.hexdigest() != checksum:
            raise DataError(f"{url} is not the published file (its SHA-256 is "
                            f"{digest.hexdigest()[:16]}..., expected {checksum[:16]}...); it "
                            "was not saved")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
