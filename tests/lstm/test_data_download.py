"""`python -m lstm data ptb`: downloads verified against shipped checksums, served here by a
local HTTP server on 127.0.0.1 from ../shared/data/ptb (and broken copies of it)."""
import functools
import http.server
import pathlib
import shutil
import threading

import pytest

from lstm.__main__ import main
from lstm.download import PTB_FILES, DataError, ensure_ptb, sha256_of

SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "ptb"
pytestmark = pytest.mark.skipif(not (SHARED / "ptb.train.txt").exists(),
                                reason="Penn Treebank not found beside the checkout")


class Served:
    """A folder served over HTTP on 127.0.0.1, counting the requests."""

    def __init__(self, folder, truncate=None):
        self.requests = []
        served = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                served.requests.append(self.path)
                if truncate and self.path.endswith(truncate):
                    data = (pathlib.Path(folder) / truncate).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 3])    # then the connection drops
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    shutil.copytree(SHARED, folder)
    served = []

    def serve(**options):
        served.append(Served(folder, **options))
        return served[-1]
    yield folder, serve
    for s in served:
        s.close()


def test_downloads_verifies_and_is_then_a_no_op(tmp_path, source, capsys):
    folder, serve = source
    server = serve()
    out = tmp_path / "data" / "ptb"
    assert main(["data", "ptb", "--dir", str(out), "--url", server.url]) == 0
    for name, (checksum, _) in PTB_FILES.items():
        assert sha256_of(out / name) == checksum
    assert sorted(p.name for p in out.iterdir()) == sorted(PTB_FILES)     # no .part left
    assert len(server.requests) == 3
    assert main(["data", "ptb", "--dir", str(out), "--url", server.url]) == 0
    assert len(server.requests) == 3                                      # nothing fetched
    assert "already there, checksum verified" in capsys.readouterr().out


def test_a_wrong_checksum_saves_nothing(tmp_path, source, capsys):
    folder, serve = source
    with open(folder / "ptb.valid.txt", "r+b") as f:
        f.seek(1000)
        f.write(b"X")                                 # same size, one byte changed
    server = serve()
    out = tmp_path / "data"
    assert main(["data", "ptb", "--dir", str(out), "--url", server.url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ptb.valid.txt is not the published file" in err
    assert not (out / "ptb.valid.txt").exists() and not list(out.glob("*.part"))


def test_a_partial_download_saves_nothing(tmp_path, source):
    _, serve = source
    server = serve(truncate="ptb.test.txt")
    with pytest.raises(DataError, match="stopped after|gave .* bytes"):
        ensure_ptb(tmp_path / "data", server.url, log=lambda *a: None)
    assert not (tmp_path / "data" / "ptb.test.txt").exists()
    assert not list((tmp_path / "data").glob("*.part"))


def test_no_network_is_one_line_saying_what_to_do(tmp_path, source, capsys):
    _, serve = source
    server = serve()
    url = server.url
    server.close()                                    # nothing listens there any more
    assert main(["data", "ptb", "--dir", str(tmp_path / "d"), "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not download" in err and "yourself" in err


def test_a_different_file_already_there_is_not_overwritten(tmp_path, source):
    _, serve = source
    out = tmp_path / "data"
    out.mkdir()
    (out / "ptb.train.txt").write_text("not the treebank\n")
    with pytest.raises(DataError, match="is there but is not the published file"):
        ensure_ptb(out, serve().url, log=lambda *a: None)
    assert (out / "ptb.train.txt").read_text() == "not the treebank\n"
