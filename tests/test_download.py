"""`synful download` against a local HTTP server with Range support: resume, checks, atomicity."""

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from synful.cli import main
from synful.download import download, part_path
from synful.errors import SynfulError
from synful.io.cremi import CremiAnnotations, CremiSample, CremiVolume, read_cremi, write_cremi


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; honours ``Range: bytes=N-``; can cut one transfer short."""

    def do_GET(self):
        server = self.server
        rng = self.headers.get("Range")
        server.requests.append((self.path, rng))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and server.honour_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            body, server.cut_after = body[: server.cut_after], None
            self.close_connection = True
        self.wfile.write(body)
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.requests, httpd.cut_after, httpd.honour_range = {}, [], None, True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def sample_bytes(tmp_path, labels=True):
    rng = np.random.default_rng(1)
    raw = CremiVolume(rng.integers(0, 255, (6, 40, 40), dtype=np.uint8))
    neuron_ids = CremiVolume(np.ones((6, 40, 40), np.uint64)) if labels else None
    path = tmp_path / "source.hdf"
    annotations = CremiAnnotations.empty() if labels else None
    write_cremi(path, CremiSample(raw, neuron_ids, annotations=annotations), compression=None)
    data = path.read_bytes()
    path.unlink()
    return data


def serve(server, tmp_path, name="/sample_A.hdf", labels=True):
    server.files[name] = sample_bytes(tmp_path, labels)
    return server.url + name, server.files[name]


def test_download_checks_and_renames(server, tmp_path):
    url, data = serve(server, tmp_path)
    out = tmp_path / "data" / "A.hdf"
    download(url, out, sha256=hashlib.sha256(data).hexdigest().upper(), progress=False)
    assert out.read_bytes() == data
    assert not part_path(out).exists()
    assert read_cremi(out).raw.data.shape == (6, 40, 40)
    # a second call finds a valid file and transfers nothing
    download(url, out, progress=False)
    assert len(server.requests) == 1


def test_cut_transfer_resumes_on_rerun(server, tmp_path):
    url, data = serve(server, tmp_path)
    out = tmp_path / "A.hdf"
    server.cut_after = len(data) // 3
    with pytest.raises(SynfulError, match="rerun to resume"):
        download(url, out, retries=0, progress=False)
    assert not out.exists()
    assert part_path(out).read_bytes() == data[: len(data) // 3]
    download(url, out, retries=0, progress=False)
    assert out.read_bytes() == data
    assert server.requests[-1] == ("/sample_A.hdf", f"bytes={len(data) // 3}-")


def test_cut_transfer_resumes_within_one_call(server, tmp_path):
    url, data = serve(server, tmp_path)
    out = tmp_path / "A.hdf"
    server.cut_after = 1000
    download(url, out, retries=2, retry_wait=0, progress=False)
    assert out.read_bytes() == data
    assert [r for _, r in server.requests] == [None, "bytes=1000-"]


def test_server_without_range_support_restarts(server, tmp_path):
    url, data = serve(server, tmp_path)
    out = tmp_path / "A.hdf"
    part_path(out).write_bytes(b"garbage that is not the start of the file")
    server.honour_range = False
    download(url, out, progress=False)
    assert out.read_bytes() == data


def test_complete_part_is_finished_without_transfer(server, tmp_path):
    url, data = serve(server, tmp_path)
    out = tmp_path / "A.hdf"
    part_path(out).write_bytes(data)
    download(url, out, progress=False)
    assert out.read_bytes() == data
    assert server.requests == [("/sample_A.hdf", f"bytes={len(data)}-")]


def test_sha256_mismatch_leaves_nothing(server, tmp_path):
    url, _ = serve(server, tmp_path)
    out = tmp_path / "A.hdf"
    with pytest.raises(SynfulError, match="sha256 mismatch"):
        download(url, out, sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_labels_required_for_training_samples(server, tmp_path):
    url, _ = serve(server, tmp_path, labels=False)
    with pytest.raises(SynfulError, match="missing dataset volumes/labels/neuron_ids"):
        download(url, tmp_path / "A.hdf", require_labels=True, progress=False)
    assert list(tmp_path.iterdir()) == []
    download(url, tmp_path / "A.hdf", progress=False)  # a test sample needs raw only
    assert (tmp_path / "A.hdf").exists()


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_cli_errors_are_one_line(server, tmp_path, capsys):
    server.files["/junk.hdf"] = b"<html>not a CREMI file</html>"
    code, err = run_cli(capsys, "download", server.url + "/junk.hdf", tmp_path / "j.hdf")
    assert code == 1 and err.count("synful: error") == 1 and "Traceback" not in err
    assert "100%" in err  # the progress bar
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"synful: error: {server.url}/junk.hdf: not an HDF5 file")
    code, err = run_cli(capsys, "download", server.url + "/missing.hdf", tmp_path / "m.hdf")
    assert code == 1 and err == f"synful: error: {server.url}/missing.hdf: HTTP 404 Not Found\n"
    assert list(tmp_path.iterdir()) == []


def test_cli_download(server, tmp_path, capsys):
    url, data = serve(server, tmp_path)
    code, err = run_cli(
        capsys,
        "download",
        url,
        tmp_path / "A.hdf",
        "--sha256",
        hashlib.sha256(data).hexdigest(),
        "--require-labels",
        "--quiet",
    )
    assert code == 0, err
    assert (tmp_path / "A.hdf").read_bytes() == data


def test_unreachable_server(tmp_path, capsys):
    code, err = run_cli(capsys, "download", "http://127.0.0.1:9/x.hdf", tmp_path / "x.hdf")
    assert code == 1 and err.startswith("synful: error: http://127.0.0.1:9/x.hdf: cannot download")
