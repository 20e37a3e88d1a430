"""Inventory validation: good and bad files, each bad one a single InputError
(exit 2) naming the file, the place and the fix."""

from __future__ import annotations

import pytest

from harness.errors import InputError
from harness.fleet.inventory import empty_inventory, load_inventory
from tests.inventory_files import error_of, write


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "id_ed25519"
    path.write_text("not read at load time")
    return path




def test_good_inventory_becomes_frozen_devices(tmp_path, key, monkeypatch):
    monkeypatch.delenv("HARNESS_KNOWN_HOSTS", raising=False)
    path = write(tmp_path, f"""
known_hosts: kh
devices:
  pi-1:
    host: 127.0.0.2
    user: pi
    port: 2222
    identity_file: {key}
    profile: x86-cpu
    python: /usr/bin/python3
    threads: 4
    tags: [arm64, lab-a]
  pi-2:
    host: 10.0.0.22
    profile: x86-cpu
""")
    inventory = load_inventory(path)
    one, two = inventory.devices
    assert (one.name, one.host, one.user, one.port, one.threads, one.tags) == ("pi-1", "127.0.0.2", "pi", 2222, 4, ("arm64", "lab-a"))
    assert one.identity_file == str(key) and one.kind == "ssh" and one.python == "/usr/bin/python3"
    assert one.known_hosts == str(tmp_path / "kh")  # relative to the inventory
    assert (two.port, two.python, two.cache_dir) == (22, "python3", "~/.cache/edge-harness")
    with pytest.raises(Exception):
        one.port = 1  # frozen
    assert [d.name for d in inventory.select(["pi-2", "local"], local=empty_local())] == ["pi-2", "local"]


def empty_local():
    from harness.device import local_device

    return local_device()


def test_known_hosts_env_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_KNOWN_HOSTS", str(tmp_path / "from-env"))
    inventory = load_inventory(write(tmp_path, "known_hosts: kh\ndevices:\n  a: {host: 127.0.0.2, profile: x86-cpu}\n"))
    assert inventory.devices[0].known_hosts == str(tmp_path / "from-env")


def test_local_is_always_there_without_an_inventory():
    inventory = empty_inventory()
    assert [d.name for d in inventory.select(["local"], local=empty_local())] == ["local"]
    with pytest.raises(InputError) as err:
        inventory.select(["pi-1"], local=empty_local())
    assert "unknown device 'pi-1'" in err.value.render() and "--inventory" in err.value.render()


def test_unknown_device_name_suggests(tmp_path):
    inventory = load_inventory(write(tmp_path, "devices:\n  pi-lab-1: {host: 127.0.0.2, profile: x86-cpu}\n"))
    with pytest.raises(InputError) as err:
        inventory.select(["pi-lab-2"], local=empty_local())
    assert "did you mean 'pi-lab-1'" in err.value.render()


def test_malformed_yaml_names_line_and_column(tmp_path):
    message = error_of(write(tmp_path, "devices:\n  pi-1:\n    host: [127.0.0.2\n    profile: x86-cpu\n"))
    assert "inventory.yaml, line" in message and "column" in message and "not valid YAML" in message


def test_unknown_key_did_you_mean(tmp_path):
    message = error_of(write(tmp_path, "devices:\n  pi-1: {hots: 127.0.0.2, profile: x86-cpu}\n"))
    assert "devices.pi-1.hots" in message and "did you mean 'host'" in message


def test_unknown_top_level_key(tmp_path):
    message = error_of(write(tmp_path, "device:\n  pi-1: {host: 127.0.0.2}\n"))
    assert "unknown key 'device'" in message and "did you mean 'devices'" in message


def test_unknown_profile_lists_known_ones(tmp_path):
    message = error_of(write(tmp_path, "devices:\n  pi-1: {host: 127.0.0.2, profile: raspberry-pi-9}\n"))
    assert "unknown profile 'raspberry-pi-9'" in message and "devices.pi-1.profile" in message and "x86-cpu" in message


def test_missing_identity_file(tmp_path):
    message = error_of(write(tmp_path, "devices:\n  pi-1: {host: 127.0.0.2, profile: x86-cpu, identity_file: ~/nope/id_x}\n"))
    assert "identity file" in message and "not found" in message and "devices.pi-1.identity_file" in message
    assert "ssh-agent" in message


@pytest.mark.parametrize("secret", ["password", "Passphrase", "ansible_password"])
def test_password_keys_are_refused_with_the_reason(tmp_path, secret):
    message = error_of(write(tmp_path, f"devices:\n  pi-1: {{host: 127.0.0.2, profile: x86-cpu, {secret}: hunter2}}\n"))
    assert "passwords are never read from the inventory" in message
    assert "hunter2" not in message  # never echo the secret
    assert "identity_file" in message


def test_unknown_host_alias(tmp_path, monkeypatch):
    config = tmp_path / "ssh_config"
    config.write_text("Host known-pi\n  HostName 127.0.0.9\n")
    message = error_of(write(tmp_path, f"ssh_config: {config}\ndevices:\n  pi-1: {{host: no-such-pi.invalid, profile: x86-cpu}}\n"))
    assert "unknown host alias 'no-such-pi.invalid'" in message and "devices.pi-1.host" in message


def test_alias_resolves_through_ssh_config(tmp_path, key):
    config = tmp_path / "ssh_config"
    config.write_text(f"Host pi-alias\n  HostName 127.0.0.7\n  User alice\n  Port 2200\n  IdentityFile {key}\n")
    inventory = load_inventory(write(tmp_path, f"ssh_config: {config}\ndevices:\n  pi-1: {{host: pi-alias, profile: x86-cpu}}\n"
                                     "  pi-2: {host: pi-alias, profile: x86-cpu, user: bob, port: 22}\n"))
    one, two = inventory.devices
    assert (one.host, one.user, one.port, one.identity_file) == ("127.0.0.7", "alice", 2200, str(key))
    # Explicit fields win over the config, as `ssh -o` does.
    assert (two.host, two.user, two.port) == ("127.0.0.7", "bob", 22)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("devices:\n  local: {host: 127.0.0.2, profile: x86-cpu}\n", "'local' is reserved"),
        ("devices:\n  'pi 1': {host: 127.0.0.2, profile: x86-cpu}\n", "device name 'pi 1'"),
        ("devices:\n  pi-1: {host: 127.0.0.2, profile: x86-cpu, port: 70000}\n", "out of range"),
        ("devices:\n  pi-1: {host: 127.0.0.2, profile: x86-cpu, port: '22'}\n", "expected a whole number"),
        ("devices:\n  pi-1: {profile: x86-cpu}\n", "devices.pi-1.host: missing required key"),
        ("devices:\n  pi-1: {host: 127.0.0.2, profile: x86-cpu, tags: arm64}\n", "expected a list of strings"),
        ("devices: {}\n", "no devices"),
    ],
)
def test_other_bad_fields(tmp_path, text, expected):
    assert expected in error_of(write(tmp_path, text))


def test_the_shipped_example_inventory_loads(tmp_path, monkeypatch):
    from harness import paths

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("key")
    (home / ".ssh" / "config").write_text("Host nuc-ci\n  HostName 10.0.0.30\n  User ci\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HARNESS_KNOWN_HOSTS", raising=False)
    inventory = load_inventory(paths.devices_dir() / "inventory.example.yaml")
    pi, nuc = inventory.devices
    assert (pi.host, pi.user, pi.port, pi.threads) == ("10.0.0.21", "pi", 22, 4)
    assert (nuc.host, nuc.user, nuc.port) == ("10.0.0.30", "ci", 22)
    assert inventory.known_hosts == home / ".ssh" / "known_hosts"


def test_gateway_becomes_the_devices_jump_host(tmp_path, key, monkeypatch):
    monkeypatch.delenv("HARNESS_KNOWN_HOSTS", raising=False)
    path = write(tmp_path, f"""
known_hosts: kh
devices:
  rpi4-a:
    host: rpi4-a.lab.invalid   # resolved by the gateway, not here
    user: pi
    identity_file: {key}
    profile: x86-cpu
    gateway: ops@10.0.0.1:2200
  rpi4-b:
    host: 192.168.7.3
    user: pi
    profile: x86-cpu
    gateway: "lab-gw"
""")
    one, two = load_inventory(path).devices
    gw = one.gateway
    assert (gw.host, gw.user, gw.port, gw.identity_file) == ("10.0.0.1", "ops", 2200, str(key))
    assert gw.known_hosts == one.known_hosts == str(tmp_path / "kh")  # pinned in the same file
    assert one.host == "rpi4-a.lab.invalid"
    # No user or port: the device's user and port 22, as ProxyJump does.
    assert (two.gateway.host, two.gateway.user, two.gateway.port) == ("lab-gw", "pi", 22)


@pytest.mark.parametrize("spec", ["pi@", "pi@gw:99999", "pi@gw:x", "a b", "@gw", "pi@gw:22:1"])
def test_bad_gateway_spec_is_exit_2_with_the_form(tmp_path, spec):
    path = write(tmp_path, f"""
devices:
  rpi4-a:
    host: 127.0.0.2
    profile: x86-cpu
    gateway: "{spec}"
""")
    text = error_of(path)
    assert str(path) in text and "devices.rpi4-a.gateway" in text
    assert f"gateway {spec!r} is not [user@]host[:port]" in text and "e.g. `gateway: pi@lab-gw.example:22`" in text
