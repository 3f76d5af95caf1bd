"""A remote scheduler over TLS: certificates from the dask configuration (docs/reliability.md)."""

import json
import logging
import shutil
import subprocess

import dask
import distributed
import pytest

from synful.blockwise import BlockwiseTask, DoneMarkers, run_blockwise
from synful.errors import SynfulError
from synful.geometry import Coordinate, Roi

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA and one certificate signed by it (for the scheduler, the workers and the client)."""
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=synful test CA", "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=dask", "-keyout", "node.key",
            "-out", "node.csr")  # fmt: skip
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "node.pem")  # fmt: skip
    return {name: str(d / name) for name in ("ca.pem", "node.pem", "node.key")}


@pytest.fixture
def tls_cluster(certificates):
    security = distributed.Security(
        tls_ca_file=certificates["ca.pem"],
        tls_scheduler_cert=certificates["node.pem"],
        tls_scheduler_key=certificates["node.key"],
        tls_worker_cert=certificates["node.pem"],
        tls_worker_key=certificates["node.key"],
        tls_client_cert=certificates["node.pem"],
        tls_client_key=certificates["node.key"],
        require_encryption=True,
    )
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tls://",
        host="127.0.0.1", security=security, dashboard_address=None,
        silence_logs=logging.WARNING,
    ) as cluster:  # fmt: skip
        yield cluster


def client_config(certificates):
    return {
        "distributed.comm.tls.ca-file": certificates["ca.pem"],
        "distributed.comm.tls.client.cert": certificates["node.pem"],
        "distributed.comm.tls.client.key": certificates["node.key"],
    }


def task():
    vs = Coordinate(1, 1, 1)
    return BlockwiseTask(Roi((0, 0, 0), (2, 1, 1)), vs, Coordinate(0, 0, 0), vs)


def nothing(block):
    pass


def test_blocks_run_on_a_tls_scheduler_by_address_and_by_file(tmp_path, tls_cluster, certificates):
    address = tls_cluster.scheduler_address
    assert address.startswith("tls://")
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text(json.dumps({"address": address}))
    with dask.config.set(client_config(certificates)):
        for n, scheduler in enumerate((address, str(scheduler_file))):
            done = tmp_path / f"done{n}"
            run_blockwise(task(), nothing, done_dir=done, scheduler=scheduler, progress=False)
            assert DoneMarkers(done).done_ids() == {0, 1}


def test_tls_scheduler_without_certificates_is_a_one_line_error(tmp_path, tls_cluster):
    address = tls_cluster.scheduler_address
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_file.write_text(json.dumps({"address": address}))
    for scheduler in (address, str(scheduler_file)):
        with pytest.raises(SynfulError) as info:
            run_blockwise(task(), nothing, done_dir=tmp_path / "d", scheduler=scheduler,
                          progress=False)  # fmt: skip
        assert str(info.value) == (
            f"{scheduler}: a tls:// scheduler needs the CA and a client certificate in the dask "
            "configuration (distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and "
            ".key; see docs/reliability.md)"
        )
