"""Boards shared through a labgrid coordinator, as inventory.

    labgrid:
      coordinator: lab-coord.example:20408   # or $LG_COORDINATOR
      tags: {board: rpi4}                    # or places: [rpi4-a, rpi4-b]
      count: 1                               # places to hold (tags only)
      profile: raspberry-pi-4
      identity_file: ~/.ssh/id_ed25519
      python: python3

`--devices labgrid` (the section's `name`) asks for the pool. The harness
reserves by tag (`labgrid-client reserve`, waiting up to --lock-wait),
acquires each place, reads its NetworkService (address, port, username),
measures, and releases every place and cancels every reservation however the
run ends. While a place is held, labgrid is the lock: the harness's own
device lock is skipped.

Why the `labgrid-client` CLI as a subprocess and not labgrid's Python
client: the CLI is labgrid's stable interface (its Python session API is
internal and changes between releases), and it keeps gRPC's threads and
asyncio loop out of the controller, whose worker threads and Ctrl-C
handling would otherwise share a process with them. Each call costs about
0.4 s; a run makes a handful.

Host keys stay pinned: the device is reached with the harness's own SSH
transport and known_hosts, never labgrid's SSH driver (which turns host-key
checking off).
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.device import Device
from harness.errors import DeviceBusy, InfraError, InputError

COORDINATOR_ENV = "LG_COORDINATOR"
DEFAULT_POOL_NAME = "labgrid"
# What a subprocess call may take: the coordinator answers in well under a second.
CALL_TIMEOUT_S = 60.0
POOL_KEYS = ("name", "coordinator", "places", "tags", "count", "profile", "identity_file", "python", "threads",
             "cpus", "cache_dir", "gateway")
_UNREACHABLE = ("Could not connect to coordinator", "coordinator is unavailable", "failed to connect to all addresses")
_LOCAL_HOSTS = {"localhost", "localhost.localdomain", "::1"}


@dataclass(frozen=True)
class LabgridPool:
    """An inventory's `labgrid:` section: which places, and how to run on them.
    `template` carries the device fields every held place shares."""

    name: str
    coordinator: str
    places: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]
    count: int
    template: Device
    source: Path
    # `[user@]host[:port]` to reach remote exporters' boards through, when
    # the inventory names one; else the exporter's own host.
    gateway: str | None = None

    @property
    def tag_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.tags)


@dataclass(frozen=True)
class PlaceInfo:
    """One place as `labgrid-client -v places` shows it."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    acquired: str | None = None  # "host/user" of the holder, as labgrid reports it
    reservation: str | None = None


# -- the CLI ------------------------------------------------------------------


class CallTimedOut(InfraError):
    """A labgrid-client call outlived its timeout (for `wait`: --lock-wait)."""


def client_executable() -> str:
    """labgrid-client next to this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / "labgrid-client"
    if beside.is_file():
        return str(beside)
    found = shutil.which("labgrid-client")
    if found is None:
        raise InputError(
            "the inventory has a labgrid section but labgrid-client is not installed",
            hint="pip install 'edge-harness[labgrid]' (or `pip install labgrid`, version 25 or later)",
        )
    return found


class LabgridClient:
    """`labgrid-client -x COORDINATOR …`, its failures as harness errors."""

    def __init__(self, coordinator: str, source: Path | None = None) -> None:
        self.coordinator = coordinator
        self.source = source
        self.executable = client_executable()

    def run(self, *args: str, place: str | None = None, token: str | None = None,
            timeout_s: float | None = CALL_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self.executable, "-x", self.coordinator, *(["-p", place] if place else []), *args]
        env = dict(os.environ)
        env.pop("LG_TOKEN", None)  # only the token this call names
        if token is not None:
            env["LG_TOKEN"] = token
        try:
            # Its own session: a terminal's Ctrl-C reaches the controller,
            # which then releases, rather than killing a release half-way.
            result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout_s,
                                    start_new_session=True, check=False)
        except subprocess.TimeoutExpired:
            raise CallTimedOut(
                f"labgrid coordinator {self.coordinator} did not answer `{' '.join(args)}` within {timeout_s:g} s",
                hint=self._fix(),
            ) from None
        if check and result.returncode != 0:
            raise self.error(args, result.stderr)
        return result

    def error(self, args: tuple[str, ...], stderr: str) -> InfraError:
        if any(marker in stderr for marker in _UNREACHABLE):
            return InfraError(f"cannot reach the labgrid coordinator at {self.coordinator}", hint=self._fix())
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        return InfraError(f"labgrid-client {' '.join(args)} failed: {last[-1] if last else 'no message'}")

    def _fix(self) -> str:
        where = f"`coordinator:` in {self.source}" if self.source else f"${COORDINATOR_ENV}"
        return (f"start it (`labgrid-coordinator --listen {self.coordinator}`) or fix {where}; "
                f"check with `labgrid-client -x {self.coordinator} places`")

    def places(self) -> dict[str, PlaceInfo]:
        return parse_places(self.run("-v", "places").stdout)


def parse_places(text: str) -> dict[str, PlaceInfo]:
    """`labgrid-client -v places` (or `show`) output into PlaceInfo by name."""
    found: dict[str, PlaceInfo] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        head = re.match(r"^Place '(?P<name>[^']+)':$", line)
        if head:
            current = {"name": head.group("name"), "tags": {}}
            found[current["name"]] = current  # type: ignore[assignment]
            continue
        if current is None or not line.startswith("  ") or line.startswith("    "):
            continue
        key, _, value = line.strip().partition(": ")
        if key == "tags":
            current["tags"] = dict(pair.split("=", 1) for pair in value.split(", ") if "=" in pair)
        elif key == "acquired" and value != "None":
            current["acquired"] = value
        elif key == "reservation":
            current["reservation"] = value
    return {name: PlaceInfo(**data) for name, data in found.items()}  # type: ignore[arg-type]


def parse_network_services(text: str) -> list[tuple[str, dict[str, Any]]]:
    """`labgrid-client show`'s acquired NetworkService resources:
    (resource path "exporter/group/cls/name", params) for each."""
    services = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        head = re.match(r"^Acquired resource '[^']*' \((?P<path>[^)]+)\):$", line)
        if not head:
            continue
        body = []
        for follow in lines[i + 1:]:
            if not follow.startswith("  "):
                break
            body.append(follow)
        try:
            resource = ast.literal_eval("\n".join(body).strip())
        except (ValueError, SyntaxError):
            continue
        if isinstance(resource, dict) and resource.get("cls") == "NetworkService":
            services.append((head.group("path"), resource.get("params") or {}))
    return services


# -- checks at plan time (exit 2 / 3 before any conversion) ---------------------


def check_pool(pool: LabgridPool) -> None:
    """Unknown places or tags are the inventory's mistake (exit 2); a
    coordinator that does not answer is infrastructure (exit 3)."""
    known = LabgridClient(pool.coordinator, pool.source).places()
    place_key = "labgrid.places" if pool.places else "labgrid.tags"
    for name in pool.places:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"places on {pool.coordinator}: {', '.join(sorted(known)) or 'none'}"
            raise InputError(f"unknown labgrid place {name!r} on coordinator {pool.coordinator}", source=pool.source,
                             place=place_key, hint=hint + " (a lab admin adds one with `labgrid-client -p NAME create`)")
    if pool.tags:
        matching = [p for p in known.values() if all(p.tags.get(k) == v for k, v in pool.tags)]
        if len(matching) < pool.count:
            offered = sorted({f"{k}={v}" for p in known.values() for k, v in p.tags.items()})
            raise InputError(
                f"{len(matching)} labgrid place(s) on {pool.coordinator} have tags {pool.tag_text}, the inventory asks for {pool.count}",
                source=pool.source, place=place_key,
                hint=f"tags the places have: {', '.join(offered) or 'none'}; fix the tags or the count "
                     "(a lab admin tags a place with `labgrid-client -p NAME set-tags KEY=VALUE`)",
            )


# -- holding places -------------------------------------------------------------


@dataclass
class _Hold:
    place: str | None = None
    token: str | None = None
    acquired: bool = False
    acquired_at: str = ""  # UTC ISO-8601, into the records: when this run began to hold it


def describe_holders(places: dict[str, PlaceInfo], names: list[str]) -> str:
    held = [f"{n} acquired by {places[n].acquired}" for n in names if n in places and places[n].acquired]
    reserved = [f"{n} reserved ({places[n].reservation})" for n in names
                if n in places and not places[n].acquired and places[n].reservation]
    return "; ".join(held + reserved) or "no holder shown"


@contextlib.contextmanager
def hold(pool: LabgridPool, *, wait_s: float, on_wait: Callable[[str], None] | None = None) -> Iterator[tuple[Device, ...]]:
    """Reserve and acquire the pool's places; yields a Device per place;
    releases every place and cancels every reservation on the way out,
    whatever ends the block (an exception, Ctrl-C, a device lost)."""
    client = LabgridClient(pool.coordinator, pool.source)
    holds: list[_Hold] = []
    try:
        deadline = time.monotonic() + wait_s
        if pool.places:
            for name in pool.places:
                holds.append(_Hold(place=name))
                _acquire_named(client, pool, holds[-1], deadline, on_wait)
        else:
            for _ in range(pool.count):
                holds.append(_Hold())
                _reserve_and_acquire(client, pool, holds[-1], deadline, on_wait)
        with ThreadPoolExecutor(max_workers=len(holds)) as pool_threads:
            devices = tuple(pool_threads.map(lambda h: _device(client, pool, h), holds))
        yield devices
    finally:
        _release(client, holds)


def _acquire_named(client: LabgridClient, pool: LabgridPool, h: _Hold, deadline: float,
                   on_wait: Callable[[str], None] | None) -> None:
    while True:
        result = client.run("acquire", place=h.place, check=False)
        if result.returncode == 0:
            h.acquired, h.acquired_at = True, _now_iso()
            return
        if any(marker in result.stderr for marker in _UNREACHABLE):
            raise client.error(("acquire",), result.stderr)
        why = describe_holders(client.places(), [h.place or ""])
        if time.monotonic() >= deadline:
            raise DeviceBusy(f"labgrid place {h.place} is held: {why}", device=pool.name,
                             hint="wait for the other run to finish, or raise --lock-wait")
        if on_wait is not None:
            on_wait(why)
        time.sleep(1.0)  # polling the coordinator, not synchronisation


def _reserve_and_acquire(client: LabgridClient, pool: LabgridPool, h: _Hold, deadline: float,
                         on_wait: Callable[[str], None] | None) -> None:
    tags = [f"{k}={v}" for k, v in pool.tags]
    h.token, h.place = parse_reservation(client.run("reserve", *tags).stdout)
    if h.place is None:
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            raise _busy(client, pool)
        if on_wait is not None:
            on_wait(f"every place with {pool.tag_text} is held: {_holders_by_tag(client, pool)}")
        # `wait` polls (and so keeps alive) the reservation until it is allocated.
        try:
            _, h.place = parse_reservation(client.run("wait", h.token, timeout_s=remaining_s).stdout)
        except CallTimedOut:
            raise _busy(client, pool) from None
        if h.place is None:
            raise InfraError(f"labgrid reservation {h.token} ended without a place")
    client.run("acquire", place="+", token=h.token)
    h.acquired, h.acquired_at = True, _now_iso()


def parse_reservation(text: str) -> tuple[str, str | None]:
    """(token, allocated place or None while it waits) from what `reserve`
    prints, or `wait` (which prints the reservation at every poll, with no
    header: the last one counts)."""
    tokens = list(re.finditer(r"^\s*token: (\S+)$", text, re.M))
    if not tokens:
        raise InfraError(f"labgrid-client printed no reservation: {text.strip()[:200]!r}")
    last = text[tokens[-1].start():]
    allocated = re.search(r"^\s*state: (allocated|acquired)$", last, re.M)
    place = re.search(r"^\s*allocations:\s*\n\s*main: (\S+)$", last, re.M)
    return tokens[-1].group(1), place.group(1) if allocated and place else None


def _holders_by_tag(client: LabgridClient, pool: LabgridPool) -> str:
    places = client.places()
    names = [n for n, p in places.items() if all(p.tags.get(k) == v for k, v in pool.tags)]
    return describe_holders(places, sorted(names))


def _busy(client: LabgridClient, pool: LabgridPool) -> DeviceBusy:
    return DeviceBusy(
        f"every labgrid place with {pool.tag_text} is held: {_holders_by_tag(client, pool)}",
        device=pool.name, hint="wait for the other run to finish, or raise --lock-wait (seconds)",
    )


def _device(client: LabgridClient, pool: LabgridPool, h: _Hold) -> Device:
    assert h.place is not None
    shown = client.run("show", place=h.place).stdout
    services = parse_network_services(shown)
    if not services:
        raise InputError(
            f"labgrid place {h.place} has no NetworkService", source=pool.source, place="labgrid",
            hint="the exporter must export the board as `NetworkService: {address: …, username: …, port: …}` "
                 "and the place must match it (`labgrid-client -p PLACE add-match EXPORTER/GROUP/*`)",
        )
    path, params = services[0]
    info = parse_places(shown).get(h.place, PlaceInfo(h.place))
    exporter = path.split("/", 1)[0]
    extra = params.get("extra") or {}
    template = pool.template
    gateway = _gateway(pool, extra, template)
    tags = tuple(f"{k}={v}" for k, v in sorted(info.tags.items()))
    return replace(
        template,
        name=h.place,
        host=str(params["address"]),
        port=int(params.get("port") or 22),
        user=str(params.get("username") or template.user),
        tags=(*template.tags, "labgrid", *tags),
        gateway=gateway,
        extra={"labgrid_place": h.place, "labgrid_exporter": exporter, "labgrid_coordinator": pool.coordinator,
               "labgrid_tags": ",".join(tags), "labgrid_acquired_at": h.acquired_at},
    )


def _gateway(pool: LabgridPool, extra: dict[str, Any], template: Device) -> Device | None:
    """Through the exporter host when the board is not on this machine's
    network (labgrid's `proxy`), the same way labgrid's own client does."""
    from harness.fleet.inventory import parse_gateway

    proxy = str(extra.get("proxy") or "")
    spec = pool.gateway
    if spec is None:
        if not extra.get("proxy_required") and (not proxy or _is_this_machine(proxy)):
            return None
        spec = proxy
    return parse_gateway(spec, template.name, template.user or "", template.identity_file,
                         Path(template.known_hosts or ""), pool.source, "labgrid.gateway")


def _now_iso() -> str:
    """Microseconds: two runs' turns on one place can be a second apart."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _is_this_machine(host: str) -> bool:
    return host in _LOCAL_HOSTS or host.startswith("127.") or host in (socket.gethostname(), socket.getfqdn())


def _release(client: LabgridClient, holds: list[_Hold]) -> None:
    """Every place released, every reservation cancelled, side by side (a
    call costs 0.4 s); one failing never skips the others, and a reservation
    also times out by itself."""

    def release(h: _Hold) -> None:
        try:
            if h.acquired and h.place:
                client.run("release", place=h.place, check=False)
            if h.token:
                client.run("cancel-reservation", h.token, check=False)
        except InfraError:
            pass  # the coordinator is gone; its reservation expires

    if holds:
        with ThreadPoolExecutor(max_workers=len(holds)) as threads:
            list(threads.map(release, holds))
