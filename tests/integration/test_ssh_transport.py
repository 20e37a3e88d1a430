"""The SSH transport against real sshd lab devices (tests/lab.py)."""

from __future__ import annotations

import hashlib
import os
import statistics
import threading
import time

import pytest

from harness.agent.client import AgentClient
from harness.errors import DeviceLost, DeviceUnreachable, HostKeyError, InfraError
from harness.fleet.inventory import load_inventory
from harness.transport import open_transport
from harness.transport.base import STDERR_KEEP_BYTES
from harness.transport.ssh import SshTransport


@pytest.fixture(scope="module")
def devices(module_lab, tmp_path_factory):
    root = tmp_path_factory.mktemp("inv")
    known_hosts = module_lab.known_hosts(root / "known_hosts")
    return load_inventory(module_lab.inventory(root / "inventory.yaml", known_hosts=known_hosts)).devices


@pytest.fixture
def transport(devices):
    t = open_transport(devices[0])
    assert isinstance(t, SshTransport)
    yield t
    t.close()


def test_exec_quotes_every_argument(transport):
    tricky = ["it's", "$HOME", "a b", "; rm -rf /", "`id`", "*", ""]
    result = transport.run(["printf", "%s\\n", *tricky])
    assert result.exit_status == 0
    assert result.stdout.decode().split("\n")[:-1] == tricky


def test_exit_status_stdin_and_stderr(transport):
    result = transport.run(["sh", "-c", "cat; echo oops >&2; exit 7"], stdin=b"hello")
    assert (result.exit_status, result.stdout, result.stderr) == (7, b"hello", b"oops\n")


def test_one_connection_is_reused(transport):
    # Its speed (TCP_NODELAY, ~3 ms a command) is a benchmark:
    # tests/benchmarks/test_ssh_round_trip.py.
    transport.run(["true"])
    session = transport._client.get_transport()
    for _ in range(5):
        transport.run(["true"])
    assert transport._client.get_transport() is session


def test_streaming_large_stdout_and_stderr_together(transport):
    # Both streams larger than the SSH window: reading one alone would stall.
    # Of stderr only the tail is kept (it is only ever shown as a tail).
    code = "import sys; sys.stderr.write('e' * (4 << 20) + 'END'); sys.stdout.write('o' * (24 << 20))"
    result = transport.run(["python3", "-c", code], timeout_s=60)
    assert result.exit_status == 0
    assert len(result.stdout) == 24 << 20
    assert len(result.stderr) == STDERR_KEEP_BYTES and result.stderr.endswith(b"eeeEND")


def test_a_device_flooding_stdout_is_cut_off_and_the_connection_survives(transport):
    """A hostile or broken device cannot grow the controller's memory: past
    the cap the read stops, the command fails, the next command works."""
    flood = "import sys\nwhile True: sys.stdout.write('x' * 65536)"
    with pytest.raises(InfraError, match="more than 1048576 bytes on stdout"):
        transport.run(["python3", "-c", flood], timeout_s=60, max_stdout_bytes=1 << 20)
    assert transport.run(["echo", "still here"]).stdout == b"still here\n"


def test_expand_home_remotely(transport, module_lab):
    assert transport.expand("~/x/y") == f"{module_lab.devices[0].home}/x/y"
    assert transport.expand("/abs/path") == "/abs/path"


def test_upload_checksum_and_partial_rename(transport, tmp_path):
    payload = os.urandom(3 << 20)
    local = tmp_path / "blob.bin"
    local.write_bytes(payload)
    before = transport.bytes_uploaded
    start = time.perf_counter()
    transport.put(local, "~/uploads/deep/blob.bin")
    seconds = time.perf_counter() - start
    print(f"upload {len(payload) / seconds / 2**20:.0f} MiB/s")
    remote = transport.expand("~/uploads/deep/blob.bin")
    result = transport.run(["sha256sum", remote])
    assert result.stdout.split()[0].decode() == hashlib.sha256(payload).hexdigest()
    assert transport.run(["test", "-e", remote + ".partial"]).exit_status == 1
    assert transport.bytes_uploaded - before == len(payload)


def test_take_fetches_a_file_the_device_wrote_and_removes_it_there(transport, tmp_path):
    """How an eval pass's detections file comes back: SFTP get, then the
    device's copy is gone (nothing piles up in its cache)."""
    payload = os.urandom(1 << 20)
    remote = transport.expand("~/detections/pair.npy")
    written = transport.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", remote], stdin=payload)
    assert written.exit_status == 0, written.stderr_tail()
    local = tmp_path / "run" / "pair.detections.npy"
    transport.take(remote, local)
    assert local.read_bytes() == payload
    assert not (tmp_path / "run" / "pair.detections.npy.partial").exists()
    assert transport.run(["test", "-e", remote]).exit_status == 1
    with pytest.raises(InfraError, match="cannot fetch"):
        transport.take(remote, tmp_path / "again.npy")  # already taken
    assert not (tmp_path / "again.npy.partial").exists()


def test_agent_deploys_once_and_files_are_never_resent(devices, tmp_path):
    local = tmp_path / "model.tflite"
    local.write_bytes(os.urandom(200_000))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    with_transport = open_transport(devices[1])
    try:
        client = AgentClient(with_transport)
        info = client.info()
        assert info["platform"]["python"] and info["runtime"]["name"] == "ai-edge-litert"
        remote = client.ensure_file(local, digest, ".tflite")
        sent = with_transport.bytes_uploaded
        assert client.ensure_file(local, digest, ".tflite") == remote
        assert with_transport.bytes_uploaded == sent  # already there: nothing sent
    finally:
        with_transport.close()
    again = open_transport(devices[1])
    try:
        client = AgentClient(again)
        client.info()
        client.ensure_file(local, digest, ".tflite")
        assert again.bytes_uploaded == 0  # a new controller: agent and file found by hash
    finally:
        again.close()


def test_silent_command_times_out_and_connection_survives(transport):
    start = time.perf_counter()
    with pytest.raises(InfraError, match="timed out after 0.5 s"):
        transport.run(["sleep", "30"], timeout_s=0.5)
    assert time.perf_counter() - start < 5
    assert transport.run(["echo", "still here"]).stdout == b"still here\n"


def test_unreachable_device(devices):
    from dataclasses import replace

    dead = replace(devices[0], port=1)  # nothing listens on port 1
    t = SshTransport(dead, connect_attempts=2, backoff_s=0.01)
    with pytest.raises(DeviceUnreachable, match="cannot connect") as err:
        t.run(["true"])
    assert err.value.exit_code == 3


def test_unknown_host_key_refused_before_anything_runs(devices, tmp_path):
    from dataclasses import replace

    stranger = replace(devices[0], known_hosts=str(tmp_path / "empty_known_hosts"))
    t = SshTransport(stranger)
    with pytest.raises(HostKeyError) as err:
        t.run(["touch", "/tmp/should-not-exist"])
    assert "harness devices trust lab-a" in err.value.render()
    assert not err.value.changed


def test_killed_server_is_device_lost(ssh_lab, tmp_path):
    lab = ssh_lab(1)
    known_hosts = lab.known_hosts(tmp_path / "known_hosts")
    device = load_inventory(lab.inventory(tmp_path / "inv.yaml", known_hosts=known_hosts)).devices[0]
    t = SshTransport(device, connect_attempts=1)
    try:
        assert t.run(["true"]).exit_status == 0
        killer = threading.Timer(0.3, lab.devices[0].kill)
        killer.start()
        with pytest.raises(DeviceLost) as err:
            t.run(["sleep", "20"], timeout_s=15)
        killer.join()
        assert err.value.exit_code == 3 and "device lost" in err.value.render()
        # The next call reconnects, finds nobody, and says so.
        with pytest.raises(DeviceUnreachable):
            t.run(["true"])
        # The device comes back: the same transport reconnects by itself.
        lab.devices[0].restart()
        assert t.run(["echo", "back"]).stdout == b"back\n"
    finally:
        t.close()
