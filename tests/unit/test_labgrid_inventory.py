"""The inventory's `labgrid:` section, and reading labgrid-client's output.

Shape errors are exit 2 at load, naming the file, `labgrid.KEY` and the
fix. The output samples below were printed by labgrid-client 26.0.1 against
a real coordinator on this machine (tests/integration/test_labgrid.py runs
the same calls for real).
"""

from __future__ import annotations

import pytest

from harness.errors import InputError
from harness.fleet.inventory import load_inventory
from harness.fleet.labgrid import parse_network_services, parse_places, parse_reservation
from tests.inventory_files import error_of as inventory_error
from tests.inventory_files import write


def error_of(path) -> str:
    return " ".join(inventory_error(path).split())


def test_a_pool_by_tag_needs_no_devices_and_is_asked_for_by_its_name(tmp_path, monkeypatch):
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    inventory = load_inventory(write(tmp_path, """
labgrid:
  coordinator: lab-coord.example:20408
  tags: {board: rpi4, lab: b}
  count: 2
  profile: x86-cpu
  threads: 2
"""))
    pool = inventory.labgrid
    assert pool is not None and inventory.devices == ()
    assert (pool.name, pool.coordinator, pool.tags, pool.count, pool.places) == (
        "labgrid", "lab-coord.example:20408", (("board", "rpi4"), ("lab", "b")), 2, ())
    assert (pool.template.profile, pool.template.threads, pool.template.kind) == ("x86-cpu", 2, "ssh")
    assert inventory.select(["labgrid"]) == () and inventory.pool(["labgrid"]) is pool
    assert inventory.pool(["local"]) is None
    with pytest.raises(InputError) as err:  # the pool is offered like a device
        inventory.select(["labgird"])
    assert "did you mean 'labgrid'?" in err.value.render()


def test_places_by_name_and_the_coordinator_from_lg_coordinator(tmp_path, monkeypatch):
    monkeypatch.setenv("LG_COORDINATOR", "10.1.2.3:20408")
    pool = load_inventory(write(tmp_path, """
labgrid: {name: lab-b, places: [rpi4-a, rpi4-b], profile: x86-cpu}
devices:
  bench: {host: 127.0.0.9, profile: x86-cpu}
""")).labgrid
    assert pool is not None and (pool.name, pool.coordinator, pool.places, pool.count) == (
        "lab-b", "10.1.2.3:20408", ("rpi4-a", "rpi4-b"), 1)


@pytest.mark.parametrize("section, wanted", [
    ("{coordinator: c:1, profile: x86-cpu}", ["labgrid:", "not both and not neither", "tags: {board: rpi4}"]),
    ("{coordinator: c:1, places: [a], tags: {board: x}, profile: x86-cpu}", ["labgrid:", "not both"]),
    ("{coordinator: c:1, places: [a], count: 2, profile: x86-cpu}", ["labgrid.count", "drop `count:`"]),
    ("{coordinator: c:1, places: [a, a], profile: x86-cpu}", ["labgrid.places", "named twice"]),
    ("{coordinator: c:1, tags: [board=rpi4], profile: x86-cpu}", ["labgrid.tags", "tags: {board: rpi4}"]),
    ("{coordinator: c:1, tags: {board: x}, count: 0, profile: x86-cpu}", ["labgrid.count", ">= 1"]),
    ("{coordinator: c:1, tags: {board: x}}", ["labgrid.profile", "missing required key"]),
    ("{coordinator: c:1, tags: {board: x}, profile: pi9}", ["labgrid.profile", "unknown profile 'pi9'"]),
    ("{coordinator: 'c:1 x', tags: {board: x}, profile: x86-cpu}", ["labgrid.coordinator", "HOST:PORT"]),
    ("{tags: {board: x}, profile: x86-cpu}", ["labgrid.coordinator", "$LG_COORDINATOR"]),
    ("{coordinater: c:1, tags: {board: x}, profile: x86-cpu}", ["labgrid.coordinater", "did you mean 'coordinator'?"]),
    ("{coordinator: c:1, tags: {board: x}, profile: x86-cpu, password: hunter2}", ["labgrid.password", "refused"]),
    ("{coordinator: c:1, tags: {board: x}, profile: x86-cpu, gateway: 'a b'}", ["labgrid.gateway", "[user@]host[:port]"]),
    ("{coordinator: c:1, tags: {board: x}, profile: x86-cpu, name: local}", ["labgrid.name", "not 'local'"]),
])
def test_bad_sections_are_exit_2_naming_the_key_and_the_fix(tmp_path, monkeypatch, section, wanted):
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    path = write(tmp_path, f"labgrid: {section}\n")
    message = error_of(path)
    assert str(path) in message
    for part in wanted:
        assert part in message, (part, message)


def test_a_pool_named_like_a_device_is_refused(tmp_path):
    message = error_of(write(tmp_path, """
labgrid: {coordinator: c:1, tags: {board: x}, profile: x86-cpu, name: bench}
devices:
  bench: {host: 127.0.0.9, profile: x86-cpu}
"""))
    assert "labgrid.name" in message and "also a device" in message


PLACES = """\
Place 'rpi4-a':
  tags: board=rpi4, lab=a
  matches:
    benchhost/lab-a/*
  acquired: ci-runner-7/root
  acquired resources:
    benchhost/lab-a/NetworkService/NetworkService
  created: 2026-12-03 06:20:56.365468
  changed: 2026-12-03 06:21:06.748441
  reservation: E1A9K9BXEO
Place 'solo':
  matches:
    benchhost/solo/*
  acquired: None
  acquired resources:
  created: 2026-12-03 06:20:56.843164
  changed: 2026-12-03 06:20:58.754402
Acquired resource 'NetworkService' (benchhost/lab-a/NetworkService/NetworkService):
  {'acquired': 'rpi4-a',
   'avail': True,
   'cls': 'NetworkService',
   'params': {'address': '127.0.0.77',
              'extra': {'proxy': 'lab-host-3', 'proxy_required': False},
              'port': 2222,
              'username': 'pi'}}
"""


def test_places_and_network_services_are_read_from_show_and_places():
    places = parse_places(PLACES)
    assert places["rpi4-a"].tags == {"board": "rpi4", "lab": "a"}
    assert (places["rpi4-a"].acquired, places["rpi4-a"].reservation) == ("ci-runner-7/root", "E1A9K9BXEO")
    assert (places["solo"].tags, places["solo"].acquired) == ({}, None)
    ((path, params),) = parse_network_services(PLACES)
    assert path.split("/")[0] == "benchhost"
    assert (params["address"], params["port"], params["username"], params["extra"]["proxy"]) == (
        "127.0.0.77", 2222, "pi", "lab-host-3")


def test_a_reservation_is_read_from_reserve_and_from_the_last_poll_of_wait():
    reserve = """\
Reservation 'IYFJT67TJ9':
  owner: vm/root
  token: IYFJT67TJ9
  state: waiting
  filters:
    main: board=rpi4
  created: 2026-12-03 06:31:59.407232
  timeout: 2026-12-03 06:32:59.407307
"""
    assert parse_reservation(reserve) == ("IYFJT67TJ9", None)
    # `wait` prints the reservation at every poll, without a header.
    wait = reserve.split("\n", 1)[1].replace("  ", "", 1) + """\
owner: vm/root
token: IYFJT67TJ9
state: allocated
filters:
  main: board=rpi4
allocations:
  main: rpi4-b
created: 2026-12-03 06:31:59.407232
timeout: 2026-12-03 06:33:01.1
"""
    assert parse_reservation(wait) == ("IYFJT67TJ9", "rpi4-b")
    with pytest.raises(Exception, match="no reservation"):
        parse_reservation("labgrid-client: Error: nothing")


def _pool(tmp_path, extra: str = ""):
    inventory = load_inventory(write(tmp_path, f"""
labgrid: {{coordinator: c:1, tags: {{board: rpi4}}, profile: x86-cpu{extra}}}
"""))
    assert inventory.labgrid is not None
    return inventory.labgrid


@pytest.mark.parametrize("extra, gateway", [
    ({"proxy": "127.0.0.1", "proxy_required": False}, None),  # the exporter is this machine
    ({"proxy": "localhost", "proxy_required": False}, None),
    ({}, None),
    ({"proxy": "lab-host-3", "proxy_required": False}, "lab-host-3:22"),  # a remote exporter: through it
    ({"proxy": "127.0.0.1", "proxy_required": True}, "127.0.0.1:22"),  # the exporter says so (--isolated)
])
def test_a_remote_exporter_is_the_gateway_to_its_boards(tmp_path, extra, gateway):
    from harness.fleet.labgrid import _gateway

    pool = _pool(tmp_path)
    got = _gateway(pool, extra, pool.template)
    assert (f"{got.host}:{got.port}" if got else None) == gateway
    if got is not None:  # logs in like the board does, its key pinned in the same known_hosts
        assert (got.identity_file, got.known_hosts) == (pool.template.identity_file, pool.template.known_hosts)


def test_the_inventory_gateway_wins_over_the_exporter_host(tmp_path):
    from harness.fleet.labgrid import _gateway

    pool = _pool(tmp_path, ", gateway: 'ops@jump.example:2200'")
    got = _gateway(pool, {"proxy": "lab-host-3"}, pool.template)
    assert got is not None and (got.user, got.host, got.port) == ("ops", "jump.example", 2200)


def test_devices_commands_refuse_the_pool_with_the_way_to_see_its_places(tmp_path, capsys):
    from harness.cli import main

    path = write(tmp_path, "labgrid: {coordinator: 'lab-coord:20408', tags: {board: rpi4}, profile: x86-cpu}\n")
    assert main(["devices", "check", "--inventory", str(path), "labgrid"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "labgrid pool" in err and "labgrid-client -x lab-coord:20408 -v places" in err and "Traceback" not in err
