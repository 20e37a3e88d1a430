"""Jump-host chains in the inventory (`jump:`, `gateway:`, the ssh config's
ProxyJump): each hop a Device whose own `gateway` is the hop before, and each
bad spec a single exit-2 message naming the file, the place and the fix."""

from __future__ import annotations

import pytest

from harness.fleet.inventory import load_inventory
from harness.transport.ssh import hop_label, jump_chain
from tests.inventory_files import error_of, write


def _chain(device) -> list[tuple[str, str, int]]:
    """(user, host, port) of every hop, first hop first, without the device."""
    return [(d.user, d.host, d.port) for d in jump_chain(device)[:-1]]


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("HARNESS_KNOWN_HOSTS", raising=False)


@pytest.mark.parametrize("jump", [
    '"ops@10.0.0.1:2200"',
    '"ops@10.0.0.1:2200,lab-gw"',
    '[ops@10.0.0.1:2200, "pi@lab-gw:22"]',
    '"ssh://ops@10.0.0.1:2200, lab-gw"',
])
def test_jump_string_chain_and_list_build_the_hops_in_order(tmp_path, no_env, jump):
    path = write(tmp_path, f"""
known_hosts: kh
devices:
  rpi4-a:
    host: rpi4-a.lab.invalid   # resolved by the last hop, not here
    user: pi
    profile: x86-cpu
    jump: {jump}
""")
    (device,) = load_inventory(path).devices
    want = [("ops", "10.0.0.1", 2200), ("pi", "lab-gw", 22)]
    assert _chain(device) == want[: 1 if "," not in jump and "[" not in jump else 2]
    hops = jump_chain(device)[:-1]
    assert hops[0].gateway is None  # the first hop is reached directly
    assert all(h.known_hosts == str(tmp_path / "kh") for h in hops)  # every key pinned in one file
    assert hop_label(hops[-1]) in ("10.0.0.1", "lab-gw") and hops[-1].extra["gateway_for"] == "rpi4-a"


def test_ssh_config_proxyjump_resolves_hops_through_the_config_and_none_is_direct(tmp_path, no_env):
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host rpi4-a\n  HostName 192.168.7.2\n  User pi\n  ProxyJump bastion,lab-gw\n"
        "Host rpi4-b\n  HostName 192.168.7.3\n  ProxyJump none\n"
        "Host bastion\n  HostName 203.0.113.5\n  User ops\n  Port 2222\n"
        "Host lab-gw\n  HostName 10.1.0.1\n"
    )
    path = write(tmp_path, """
ssh_config: ssh_config
devices:
  rpi4-a: {host: rpi4-a, profile: x86-cpu}
  rpi4-b: {host: 127.0.0.2, profile: x86-cpu}
  rpi4-c: {host: rpi4-a, profile: x86-cpu, jump: none}     # the inventory wins over the config
  rpi4-d: {host: rpi4-a, profile: x86-cpu, gateway: ops@10.9.9.9}
""")
    a, b, c, d = load_inventory(path).devices
    # The hop without a user takes the device's (pi), as the single gateway always did.
    assert _chain(a) == [("ops", "203.0.113.5", 2222), ("pi", "10.1.0.1", 22)]
    assert [hop_label(h) for h in jump_chain(a)] == ["bastion", "lab-gw", "rpi4-a"]
    assert (b.gateway, c.gateway) == (None, None)
    assert _chain(d) == [("ops", "10.9.9.9", 22)]


def test_devices_sharing_a_chain_share_its_hops(tmp_path, no_env):
    path = write(tmp_path, """
devices:
  a: {host: 192.168.7.2, profile: x86-cpu, jump: "ops@bastion,lab-gw"}
  b: {host: 192.168.7.3, profile: x86-cpu, jump: [ops@bastion, lab-gw]}
""")
    a, b = load_inventory(path).devices
    # `devices trust a b` pins each hop once, in chain order (dict.fromkeys there).
    order = list(dict.fromkeys(h for d in (a, b) for h in jump_chain(d)))
    assert [hop_label(h) for h in order] == ["bastion", "lab-gw", "a", "b"]


def test_jump_and_gateway_together_is_exit_2_with_the_fix(tmp_path):
    path = write(tmp_path, """
devices:
  rpi4-a: {host: 127.0.0.2, profile: x86-cpu, jump: lab-gw, gateway: lab-gw}
""")
    text = error_of(path)
    assert str(path) in text and "devices.rpi4-a" in text
    assert "both `jump:` and `gateway:` are given" in text and "remove `gateway:`" in text


@pytest.mark.parametrize("jump, wanted", [
    ('"a,,b"', "are not a list of [user@]host[:port]"),
    ("[]", "are not a list of [user@]host[:port]"),
    ("{host: gw}", "are not a list of [user@]host[:port]"),
    ('"ops@gw:99999,lab-gw"', "jump 'ops@gw:99999' is not [user@]host[:port]"),
    ("[ok-gw, 'a b']", "jump 'a b' is not [user@]host[:port]"),
])
def test_bad_jump_spec_is_exit_2_naming_the_place(tmp_path, jump, wanted):
    path = write(tmp_path, f"""
devices:
  rpi4-a: {{host: 127.0.0.2, profile: x86-cpu, jump: {jump}}}
""")
    text = error_of(path)
    assert str(path) in text and "devices.rpi4-a.jump" in text and wanted in text, text
    assert "ops@bastion,pi@lab-gw" in text or "e.g. `jump: pi@lab-gw.example:22`" in text, text


def test_bad_proxyjump_in_the_ssh_config_names_that_file_and_host(tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host rpi4-a\n  HostName 127.0.0.2\n  ProxyJump ops@gw:0\n")
    path = write(tmp_path, "ssh_config: ssh_config\ndevices:\n  rpi4-a: {host: rpi4-a, profile: x86-cpu}\n")
    text = error_of(path)
    assert str(config) in text and "Host rpi4-a ProxyJump" in text and "is not [user@]host[:port]" in text, text
    assert "e.g. `ProxyJump pi@lab-gw.example:22`" in text, text
