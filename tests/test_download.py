"""`synful download` against a local HTTP server with Range support: resume, checks, atomicity."""

import errno
import hashlib
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from synful.cli import main
from synful.download import download, local_write_problem, lock_path, meta_path, part_path
from synful.errors import SynfulError
from synful.io.cremi import CremiAnnotations, CremiSample, CremiVolume, read_cremi, write_cremi


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files[path]``; honours ``Range: bytes=N-``; can cut one transfer short.

    ``server.validators[path]`` (a dict of header -> value, e.g. ETag, Last-Modified) is sent
    with every response; ``If-Range`` is honoured (a range only when it names the current
    version) unless ``server.honour_if_range`` is false. ``server.redirects[path]`` answers
    302 with that Location; ``server.range_start`` (once) sends a range from that byte instead
    of the one asked for.
    """

    def do_GET(self):
        server = self.server
        rng = self.headers.get("Range")
        server.requests.append((self.path, rng))
        server.if_ranges.append(self.headers.get("If-Range"))
        if self.path in server.redirects:
            self.send_response(302)
            self.send_header("Location", server.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        validators = server.validators.get(self.path, {})
        if_range = self.headers.get("If-Range")
        current = if_range is None or if_range in validators.values()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and server.honour_range and (current or not server.honour_if_range):
            start = int(match.group(1))
            if server.range_start is not None:
                start, server.range_start = server.range_start, None
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                for key, value in validators.items():
                    self.send_header(key, value)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        for key, value in validators.items():
            self.send_header(key, value)
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
    httpd.validators, httpd.if_ranges, httpd.honour_if_range = {}, [], True
    httpd.redirects, httpd.range_start = {}, None
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


def test_cli_download_archive_with_no_check_then_unpack(server, tmp_path, capsys):
    from test_unpack import members, write_archive

    files = members(tmp_path)
    archive = tmp_path / "groundtruth.tar.gz"
    write_archive(archive, files)
    server.files["/groundtruth.tar.gz"] = data = archive.read_bytes()
    archive.unlink()
    url = server.url + "/groundtruth.tar.gz"
    out = tmp_path / "archives" / "groundtruth.tar.gz"
    # without --no-check the archive fails the CREMI check and leaves nothing
    code, err = run_cli(capsys, "download", url, out, "--quiet")
    assert code == 1 and err.startswith(f"synful: error: {url}: not an HDF5 file")
    assert not out.exists() and not part_path(out).exists() and not meta_path(out).exists()
    server.cut_after = len(data) // 2
    sha = hashlib.sha256(data).hexdigest()
    code, err = run_cli(capsys, "download", url, out, "--no-check", "--sha256", sha, "--quiet")
    assert code == 0, err
    assert out.read_bytes() == data
    assert [r for p, r in server.requests[-2:]] == [None, f"bytes={len(data) // 2}-"]
    member = "cremi_v01/sample_A_20160501.hdf"
    sample = tmp_path / "archives" / "groundtruth" / member
    code, err = run_cli(capsys, "unpack", out, member, sample, "--quiet")
    assert code == 0, err
    assert sample.read_bytes() == files[member]
    code, err = run_cli(capsys, "download", url, out, "--no-check", "--sha256", "0" * 64)
    assert code == 1 and "sha256 mismatch" in err  # an existing OUT is checked, not replaced
    code, err = run_cli(capsys, "download", url, out, "--no-check", "--require-labels")
    assert code == 1 and "drop --no-check" in err


def version(server, name, data, **validators):
    server.files[name] = data
    server.validators[name] = {key.replace("_", "-").title(): v for key, v in validators.items()}


@pytest.mark.parametrize(
    "validators, if_range",
    [
        ({"etag": '"v1"'}, '"v1"'),
        (
            {"etag": 'W/"v1"', "last_modified": "Mon, 01 Jan 2024 00:00:00 GMT"},
            "Mon, 01 Jan 2024 00:00:00 GMT",
        ),
    ],
)
def test_resume_sends_if_range(server, tmp_path, validators, if_range):
    data = bytes(range(256)) * 40
    version(server, "/a.tar.gz", data, **validators)
    out = tmp_path / "a.tar.gz"
    server.cut_after = 3000
    with pytest.raises(SynfulError, match="rerun to resume"):
        download(server.url + "/a.tar.gz", out, retries=0, progress=False, check_layout=False)
    assert meta_path(out).exists()
    download(server.url + "/a.tar.gz", out, retries=0, progress=False, check_layout=False)
    assert out.read_bytes() == data
    assert server.requests[-1] == ("/a.tar.gz", "bytes=3000-")
    assert server.if_ranges == [None, if_range]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "a.tar.gz.sha256.json"]


@pytest.mark.parametrize("honour_if_range", [True, False])
def test_changed_file_restarts_the_resume(server, tmp_path, honour_if_range):
    old, new = bytes(range(256)) * 40, bytes(reversed(range(256))) * 50
    version(server, "/a.tar.gz", old, etag='"v1"')
    out = tmp_path / "a.tar.gz"
    server.cut_after = 3000
    with pytest.raises(SynfulError, match="rerun to resume"):
        download(server.url + "/a.tar.gz", out, retries=0, progress=False, check_layout=False)
    version(server, "/a.tar.gz", new, etag='"v2"')
    server.honour_if_range = honour_if_range  # one that ignores it sends v2's tail: detected
    download(server.url + "/a.tar.gz", out, retries=0, progress=False, check_layout=False)
    assert out.read_bytes() == new
    assert server.if_ranges[1] == '"v1"'
    expected = [None, "bytes=3000-"] if honour_if_range else [None, "bytes=3000-", None]
    assert [r for _, r in server.requests] == expected
    assert not meta_path(out).exists()


def test_complete_part_of_a_changed_file_restarts(server, tmp_path):
    old, new = b"a" * 5000, b"b" * 5000
    version(server, "/a.bin", new, etag='"v2"')
    out = tmp_path / "a.bin"
    part_path(out).write_bytes(old)
    meta_path(out).write_text(f'{{"url": "{server.url}/a.bin", "etag": "\\"v1\\""}}')
    server.honour_if_range = False  # the 416 names v2: start over
    download(server.url + "/a.bin", out, progress=False, check_layout=False)
    assert out.read_bytes() == new
    assert [r for _, r in server.requests] == ["bytes=5000-", None]


def test_part_from_another_url_restarts(server, tmp_path):
    data = b"c" * 5000
    version(server, "/b.bin", data, etag='"v1"')
    out = tmp_path / "b.bin"
    part_path(out).write_bytes(b"x" * 100)
    meta_path(out).write_text('{"url": "http://elsewhere/b.bin", "etag": "\\"v1\\""}')
    download(server.url + "/b.bin", out, progress=False, check_layout=False)
    assert out.read_bytes() == data
    assert server.requests == [("/b.bin", None)]


def cut_then_resume(server, name, out, first, second=None, **kwargs):
    """Download ``first``, cut off after 3000 bytes; serve ``second`` (if given); rerun."""
    server.files[name] = first
    server.cut_after = 3000
    url = server.url + name
    with pytest.raises(SynfulError, match="rerun to resume"):
        download(url, out, retries=0, progress=False, check_layout=False)
    assert part_path(out).read_bytes() == first[:3000]
    if second is not None:
        server.files[name] = second
    for key, value in kwargs.items():
        setattr(server, key, value)
    download(url, out, retries=0, progress=False, check_layout=False)


def test_partial_response_from_another_offset_restarts(server, tmp_path):
    # no validators; the server answers the range with bytes from 1000 on: appending them
    # would corrupt the file
    data = bytes(range(256)) * 40
    out = tmp_path / "a.bin"
    cut_then_resume(server, "/a.bin", out, data, range_start=1000)
    assert out.read_bytes() == data
    assert [r for _, r in server.requests] == [None, "bytes=3000-", None]


def test_changed_file_without_validators_restarts_by_its_size(server, tmp_path):
    # neither ETag nor Last-Modified: the total size in Content-Range tells the new file
    old, new = bytes(range(256)) * 40, bytes(reversed(range(256))) * 50
    out = tmp_path / "a.bin"
    cut_then_resume(server, "/a.bin", out, old, new)
    assert out.read_bytes() == new
    assert [r for _, r in server.requests] == [None, "bytes=3000-", None]


@pytest.mark.parametrize("target", ["ftp://127.0.0.1/a.hdf", "file:///etc/hostname"])
def test_redirect_to_another_scheme_is_an_error(server, tmp_path, capsys, target):
    server.redirects["/a.hdf"] = target
    code, err = run_cli(capsys, "download", server.url + "/a.hdf", tmp_path / "A.hdf")
    scheme = target.split(":")[0]
    assert code == 1 and err == (
        f"synful: error: {server.url}/a.hdf: redirected to {target}: a redirect may not change "
        f"the scheme (http to {scheme})\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_redirect_within_the_scheme_is_followed(server, tmp_path):
    url, data = serve(server, tmp_path, "/new.hdf")
    server.redirects["/old.hdf"] = "/new.hdf"
    download(server.url + "/old.hdf", tmp_path / "A.hdf", progress=False)
    assert (tmp_path / "A.hdf").read_bytes() == data
    assert [p for p, _ in server.requests] == ["/old.hdf", "/new.hdf"]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.hdf", "data:,hello", "/local/a.hdf"])
def test_only_https_http_and_file_urls(tmp_path, capsys, url):
    code, err = run_cli(capsys, "download", url, tmp_path / "A.hdf")
    assert code == 1 and err.startswith(f"synful: error: {url}: unsupported URL (")
    assert err.endswith("use https://, http:// or file://\n") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_file_url(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"local bytes" * 100)
    out = tmp_path / "copy" / "a.bin"
    download(source.as_uri(), out, progress=False, check_layout=False)
    assert out.read_bytes() == source.read_bytes()
    assert json.loads(lock_path(out).read_text())["url"] == source.as_uri()


def test_first_download_records_its_sha256_and_later_ones_must_match(server, tmp_path, capsys):
    url, data = serve(server, tmp_path)
    out = tmp_path / "data" / "A.hdf"
    download(url, out, progress=False)
    lock = lock_path(out)
    assert json.loads(lock.read_text()) == {
        "url": url,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    # the same file again: accepted
    out.unlink()
    download(url, out, progress=False)
    assert out.read_bytes() == data
    # the server now sends another (valid) file under the same URL: refused, nothing kept
    out.unlink()
    other = sample_bytes(tmp_path, labels=False)
    server.files["/sample_A.hdf"] = other
    code, err = run_cli(capsys, "download", url, out, "--quiet")
    new, old = hashlib.sha256(other).hexdigest(), hashlib.sha256(data).hexdigest()
    assert code == 1 and err == (
        f"synful: error: {url}: sha256 {new} differs from {old}, recorded in {lock} by the "
        "first download of this URL: the file changed (delete A.hdf.sha256.json to accept it)\n"
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["A.hdf.sha256.json"]
    # a given sha256 overrides the record and replaces it
    download(url, out, sha256=new, progress=False)
    assert out.read_bytes() == other and json.loads(lock.read_text())["sha256"] == new


def test_recorded_sha256_checks_an_existing_out(server, tmp_path):
    url, data = serve(server, tmp_path)
    out = tmp_path / "A.hdf"
    download(url, out, progress=False)
    out.write_bytes(sample_bytes(tmp_path, labels=False))
    with pytest.raises(SynfulError, match="differs from .* recorded in"):
        download(url, out, progress=False)


def test_another_url_replaces_the_record(server, tmp_path):
    out = tmp_path / "a.bin"
    server.files["/a.bin"], server.files["/b.bin"] = b"a" * 5000, b"b" * 7000
    download(server.url + "/a.bin", out, progress=False, check_layout=False)
    out.unlink()
    download(server.url + "/b.bin", out, progress=False, check_layout=False)
    assert out.read_bytes() == b"b" * 7000
    record = json.loads(lock_path(out).read_text())
    assert record["url"] == server.url + "/b.bin" and record["size"] == 7000


def test_damaged_lock_file_is_an_error(server, tmp_path):
    server.files["/a.bin"] = b"a" * 5000
    out = tmp_path / "a.bin"
    lock_path(out).write_text("{not json")
    with pytest.raises(SynfulError, match="not a sha256 lock file"):
        download(server.url + "/a.bin", out, progress=False, check_layout=False)


def test_disk_full_is_reported_not_retried(server, tmp_path, capsys):
    # the .part is the kernel's always-full device: every write fails with ENOSPC
    if not os.access("/dev/full", os.W_OK):
        pytest.skip("no writable /dev/full")
    server.files["/a.bin"] = b"a" * (3 << 20)
    out = tmp_path / "a.bin"
    part_path(out).symlink_to("/dev/full")
    code, err = run_cli(
        capsys, "download", server.url + "/a.bin", out, "--no-check", "--retries", "3", "--quiet"
    )
    assert code == 1 and err == (
        f"synful: error: {part_path(out)}: no space left on device (rerun to resume from "
        "a.bin.part)\n"
    )
    assert len(server.requests) == 1  # not retried as if the connection had dropped
    assert not out.exists()


def test_local_write_problems():
    assert local_write_problem(OSError(errno.ENOSPC, "No space left on device")) == (
        "no space left on device"
    )
    assert local_write_problem(OSError(errno.EDQUOT, "Disk quota exceeded")) == (
        "disk quota exceeded"
    )
    assert local_write_problem(PermissionError(errno.EACCES, "Permission denied")) == (
        "Permission denied"
    )
