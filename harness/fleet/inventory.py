"""The device inventory (Ansible-like YAML) into frozen Device records.

    ssh_config: ~/.ssh/config          # optional; aliases resolve through it
    known_hosts: ~/.ssh/known_hosts    # optional; HARNESS_KNOWN_HOSTS wins
    devices:
      pi-lab-1:
        host: 10.0.0.21                # or an alias from ~/.ssh/config
        user: pi
        port: 22
        identity_file: ~/.ssh/id_ed25519
        profile: raspberry-pi-4
        python: /usr/bin/python3
        threads: 4
        tags: [arm64, lab-a]
        cache_dir: ~/.cache/edge-harness
        jump: pi@lab-gw.example:22     # optional jump hosts, like ssh's ProxyJump:
                                       # `[user@]host[:port]`, a chain `a,b` or a
                                       # list (the first reached directly, each next
                                       # through the one before); `none`: direct.
                                       # Without it, the ssh config's ProxyJump.
                                       # Every hop's key is pinned in the same
                                       # known_hosts. `gateway:` is its one-hop synonym.
    labgrid:                           # optional: boards shared through a labgrid
      coordinator: lab-coord:20408     # coordinator (harness/fleet/labgrid.py);
      tags: {board: rpi4}              # `--devices labgrid` holds `count` places
      count: 1                         # with these tags (or `places: [a, b]`)
      profile: raspberry-pi-4

Everything is checked here, once, so a typo is an exit-2 message naming the
file and the field, never a connection error ten minutes into a run.
Explicit inventory fields win over ~/.ssh/config, which wins over defaults
(the same order as `ssh -o` over the config file).
"""

from __future__ import annotations

import difflib
import getpass
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from harness.config import Fields, load_yaml_mapping
from harness.device import LOCAL_DEVICE_NAME, Device
from harness.errors import InputError
from harness.fleet.labgrid import COORDINATOR_ENV, DEFAULT_POOL_NAME, POOL_KEYS, LabgridPool
from harness.fleet.energy import parse_energy
from harness.fleet.profiles import RUNTIMES, available_profiles, load_profile, runtime_list, threads_setting

DEFAULT_SSH_CONFIG = "~/.ssh/config"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
KNOWN_HOSTS_ENV = "HARNESS_KNOWN_HOSTS"
INVENTORY_ENV = "HARNESS_INVENTORY"

TOP_KEYS = ("devices", "ssh_config", "known_hosts", "labgrid")
DEVICE_KEYS = (
    "host", "user", "port", "identity_file", "profile", "python", "threads", "cpus", "tags", "cache_dir", "gateway",
    "jump", "runtimes", "runtime_pythons", "energy",
)
# Keys people bring from Ansible or habit that must never hold a secret here.
SECRET_KEYS = ("password", "passwd", "pass", "passphrase", "ansible_password", "ansible_ssh_pass", "become_password")
_GATEWAY_RE = re.compile(r"^(?:(?P<user>[^@\s:]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d+))?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Inventory:
    source: Path | None
    devices: tuple[Device, ...]
    known_hosts: Path
    # The `labgrid:` section: places held for a run, not devices of the file.
    labgrid: LabgridPool | None = None

    def names(self) -> list[str]:
        return [d.name for d in self.devices]

    def pool(self, names: Iterable[str]) -> LabgridPool | None:
        """The labgrid pool when `names` asks for it (by the section's name)."""
        return self.labgrid if self.labgrid is not None and self.labgrid.name in names else None

    def select(self, names: Iterable[str], *, local: Device | None = None, flag: str = "--devices") -> tuple[Device, ...]:
        """The named devices in the order asked; `local` is always known."""
        by_name = {d.name: d for d in self.devices}
        chosen: list[Device] = []
        for name in names:
            if self.labgrid is not None and name == self.labgrid.name:
                continue  # held at run time: RunPlan.pool
            if name == LOCAL_DEVICE_NAME and local is not None:
                device = local
            elif name in by_name:
                device = by_name[name]
            else:
                known = [LOCAL_DEVICE_NAME, *by_name, *([self.labgrid.name] if self.labgrid else [])]
                close = difflib.get_close_matches(name, known, n=1)
                where = f"inventory {self.source}" if self.source else "no inventory (pass --inventory FILE)"
                hint = f"did you mean {close[0]!r}?" if close else f"known devices ({where}): {', '.join(known)}"
                raise InputError(f"unknown device {name!r}", source=flag, hint=hint)
            if device not in chosen:
                chosen.append(device)
        return tuple(chosen)


def empty_inventory() -> Inventory:
    """No inventory file: only `local` exists."""
    return Inventory(None, (), _known_hosts_path(None, None))


def load_inventory(path: Path) -> Inventory:
    path = Path(path)
    top = Fields(load_yaml_mapping(path, what="inventory"), source=path, place="")
    top.reject_unknown(TOP_KEYS)
    base = path.parent
    ssh_config_path = _ssh_config_path(top.str("ssh_config"), base, path)
    known_hosts = _known_hosts_path(top.str("known_hosts"), base)
    ssh_config = _load_ssh_config(ssh_config_path) if ssh_config_path else None
    has_pool = top.data.get("labgrid") is not None
    devices_field = top.sub("devices", required=not has_pool)
    if not devices_field.data and not has_pool:
        raise InputError("no devices", source=path, place="devices",
                         hint="add at least one device under 'devices:' (or a 'labgrid:' section)")
    devices = tuple(
        _parse_device(str(name), devices_field.sub(name), ssh_config, ssh_config_path, known_hosts, base)
        for name in devices_field.data
    )
    pool = _parse_pool(top.sub("labgrid"), known_hosts, base, path) if has_pool else None
    if pool is not None and pool.name in {d.name for d in devices}:
        raise InputError(f"labgrid pool name {pool.name!r} is also a device", source=path, place="labgrid.name",
                         hint="give the pool another `name:`")
    return Inventory(path, devices, known_hosts, pool)


def _expand(value: str, base: Path) -> Path:
    """~ and $VARS expanded; relative paths are relative to the inventory."""
    expanded = Path(os.path.expandvars(os.path.expanduser(value)))
    return expanded if expanded.is_absolute() else (base / expanded)


def _ssh_config_path(value: str | None, base: Path, source: Path) -> Path | None:
    if value is not None:
        path = _expand(value, base)
        if not path.is_file():
            raise InputError(f"ssh config {str(path)!r} not found", source=source, place="ssh_config", hint="fix the path or remove the key")
        return path
    default = Path(os.path.expanduser(DEFAULT_SSH_CONFIG))
    return default if default.is_file() else None


def _known_hosts_path(value: str | None, base: Path | None) -> Path:
    """HARNESS_KNOWN_HOSTS, else the inventory's `known_hosts`, else ~/.ssh/known_hosts."""
    override = os.environ.get(KNOWN_HOSTS_ENV)
    if override:
        return Path(os.path.expanduser(override))
    if value is not None and base is not None:
        return _expand(value, base)
    return Path(os.path.expanduser(DEFAULT_KNOWN_HOSTS))


def _load_ssh_config(path: Path) -> Any:
    import paramiko  # only device commands pay for it

    try:
        return paramiko.SSHConfig.from_path(str(path))
    except (OSError, paramiko.ConfigParseError) as exc:
        raise InputError(f"cannot read ssh config: {exc}", source=path, hint="check the file with `ssh -G HOST`") from None


def _parse_device(
    name: str, f: Fields, ssh_config: Any, ssh_config_path: Path | None, known_hosts: Path, base: Path
) -> Device:
    source = f.source
    if not _NAME_RE.match(name):
        raise InputError(
            f"device name {name!r} has characters other than letters, digits, '.', '_' and '-'",
            source=source, place=f.place, hint="rename the device (names become file names in the run folder)",
        )
    if name == LOCAL_DEVICE_NAME:
        raise InputError(
            "'local' is reserved for this machine", source=source, place=f.place, hint="give the SSH device another name"
        )
    for key in f.data:
        if str(key).lower() in SECRET_KEYS:
            raise InputError(
                f"key {key!r} refused: passwords are never read from the inventory "
                "(it is a file people commit and share, and password logins cannot be automated safely)",
                source=source, place=f"{f.place}.{key}",
                hint="remove it and log in with a key: set identity_file, or load the key into ssh-agent",
            )
    f.reject_unknown(DEVICE_KEYS)
    host = f.str("host", required=True)
    profile = f.str("profile", required=True)
    known_profiles = available_profiles()
    if profile not in known_profiles:
        close = difflib.get_close_matches(profile, known_profiles, n=1)
        known = f"known profiles: {', '.join(known_profiles)}"
        hint = f"did you mean {close[0]!r}? ({known})" if close else known
        raise InputError(f"unknown profile {profile!r}", source=source, place=f"{f.place}.profile", hint=hint)
    load_profile(profile)  # a broken profile file is exit 2 now, not mid-run

    resolved = ssh_config.lookup(host) if ssh_config is not None else {}
    hostname = resolved.get("hostname", host)
    user = f.str("user") or resolved.get("user") or getpass.getuser()
    port = f.int("port", minimum=1)
    if port is None:
        port = _config_port(resolved.get("port"), ssh_config_path, host)
    if port > 65535:
        raise InputError(f"port {port} is out of range", source=source, place=f"{f.place}.port", hint="use 1..65535")
    identity = _identity_file(f.str("identity_file"), resolved.get("identityfile", []), base, source, f"{f.place}.identity_file")
    gateway = _jump_chain(f, host, resolved, name, user, identity, ssh_config, ssh_config_path, known_hosts)
    if hostname == host and gateway is None:
        # Behind a gateway the name is the gateway's to resolve, not ours.
        _check_resolves(host, ssh_config_path, source, f"{f.place}.host")
    threads, sweep_threads = threads_setting(f)
    return Device(
        name=name,
        profile=profile,
        kind="ssh",
        python=f.str("python", "python3"),
        threads=threads,
        sweep_threads=sweep_threads,
        runtimes=runtime_list(f),
        runtime_pythons=_runtime_pythons(f),
        cpus=_cpus(f),
        tags=f.str_list("tags"),
        cache_dir=f.str("cache_dir", Device.cache_dir),
        host=hostname,
        user=user,
        port=port,
        identity_file=identity,
        known_hosts=str(known_hosts),
        gateway=gateway,
        energy=parse_energy(f.sub("energy")),
    )


def _jump_chain(
    f: Fields, host: str, resolved: dict[str, Any], device_name: str, user: str, identity: str | None,
    ssh_config: Any, ssh_config_path: Path | None, known_hosts: Path,
) -> Device | None:
    """The device's last jump host (each hop's `gateway` is the hop before),
    from `jump:`, its one-hop synonym `gateway:`, or else the ssh config's
    ProxyJump for the host, as ssh itself would take it."""
    given = [key for key in ("jump", "gateway") if f.data.get(key) is not None]
    if len(given) == 2:
        raise InputError(
            "both `jump:` and `gateway:` are given", source=f.source, place=f.place,
            hint="keep `jump:` (`gateway:` is its older one-hop name) and remove `gateway:`",
        )
    if given == ["gateway"]:
        specs, source, place = [f.str("gateway") or ""], f.source, f"{f.place}.gateway"
    elif given == ["jump"]:
        specs, source, place = _jump_specs(f.data["jump"], f.source, f"{f.place}.jump"), f.source, f"{f.place}.jump"
    elif resolved.get("proxyjump"):
        place = f"Host {host} ProxyJump"
        specs, source = _jump_specs(str(resolved["proxyjump"]), ssh_config_path, place), ssh_config_path
    else:
        return None
    key = given[0] if given else "ProxyJump"
    hop: Device | None = None
    for spec in specs:
        hop = _parse_hop(spec, key, hop, device_name, user, identity, (ssh_config, ssh_config_path), known_hosts,
                         source, place)
    return hop


def _jump_specs(value: Any, source: Any, place: str) -> list[str]:
    """`a`, `a,b` (ProxyJump's form) or a YAML list, into the hop specs in
    chain order; `none` (ProxyJump's own word) is an empty chain."""
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        parts = None
    if parts is not None and [p.strip().lower() for p in parts] == ["none"]:
        return []
    if parts is None or any(not p.strip() for p in parts):
        raise InputError(
            f"jump hosts {value!r} are not a list of [user@]host[:port]", source=source, place=place,
            hint="e.g. `jump: pi@lab-gw.example:22`, a chain `jump: ops@bastion,pi@lab-gw` or a YAML list "
                 "(`none` for a direct connection)",
        )
    return [p.strip() for p in parts]


def _parse_hop(
    spec: str, key: str, previous: Device | None, device_name: str, user: str, identity: str | None,
    ssh: tuple[Any, Path | None], known_hosts: Path, source: Any, place: str,
) -> Device:
    """One `[user@]host[:port]` (or `ssh://` URI, as ProxyJump allows) into a
    jump host's Device, reached through `previous`. A host that is a Host
    alias in the ssh config takes its HostName, User, Port and IdentityFile
    from there, as ssh does for jump hosts; the spec's user and port win; a
    hop with neither logs in with the device's user and key."""
    text = spec.strip()
    text = text[len("ssh://"):] if text.startswith("ssh://") else text
    match = _GATEWAY_RE.match(text)
    port_text = match.group("port") if match else None
    port = int(port_text) if port_text else None
    if match is None or (port is not None and not 1 <= port <= 65535):
        chain = " (or `jump:` for a chain)" if key == "gateway" else ", a chain `a,b` or a YAML list"
        raise InputError(
            f"{key} {spec!r} is not [user@]host[:port]",
            source=source, place=place,
            hint=f"write it like ssh's ProxyJump, e.g. `{key}{' ' if key == 'ProxyJump' else ': '}pi@lab-gw.example:22` "
                 f"(port 1..65535){chain}",
        )
    label = match.group("host").strip("[]")
    ssh_config, ssh_config_path = ssh
    config = ssh_config.lookup(label) if ssh_config is not None else {}
    if port is None:
        port = _config_port(config.get("port"), ssh_config_path, label)
    hop_identity = _identity_file(None, config.get("identityfile", []), Path("."), source, place) or identity
    return Device(
        name=f"gateway {label}",
        profile="x86-cpu",
        kind="ssh",
        python="python3",
        host=config.get("hostname", label),
        user=match.group("user") or config.get("user") or user,
        port=port,
        identity_file=hop_identity,
        known_hosts=str(known_hosts),
        gateway=previous,
        # `hop`: the name the user wrote, for "cannot reach X through lab-gw".
        extra={"gateway_for": device_name, "hop": label},
    )


def parse_gateway(
    spec: str | None, device_name: str, user: str, identity: str | None, known_hosts: Path, source: Any, place: str
) -> Device | None:
    """One `[user@]host[:port]` jump host (the labgrid section's `gateway:`)
    into its own Device. It logs in with the device's key and user unless the
    spec names a user, as ProxyJump does."""
    if spec is None:
        return None
    return _parse_hop(spec, "gateway", None, device_name, user, identity, (None, None), known_hosts, source, place)


def _runtime_pythons(f: Fields) -> dict[str, str]:
    """runtime -> the interpreter on the device that has it, for a runtime
    the device's `python` lacks (tflite-runtime needs numpy < 2)."""
    m = f.sub("runtime_pythons")
    m.reject_unknown(RUNTIMES)
    return {name: m.str(name, required=True) or "" for name in m.data}


def _cpus(f: Fields) -> tuple[int, ...] | None:
    """CPU affinity for the measurement: a list of core numbers."""
    value = f.data.get("cpus")
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise InputError(
            f"expected a list of CPU numbers, got {value!r}", source=f.source, place=f"{f.place}.cpus", hint="cpus: [2, 3]"
        )
    return tuple(value)


def _check_resolves(host: str, ssh_config_path: Path | None, source: Any, place: str) -> None:
    """A name that is neither an address, an ssh-config alias nor a DNS name
    is a typo in the file (exit 2), not an unreachable device (exit 3)."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        where = f"not a Host alias in {ssh_config_path}" if ssh_config_path else "no ~/.ssh/config to resolve aliases"
        raise InputError(
            f"unknown host alias {host!r}: {where}, and not a name DNS resolves",
            source=source, place=place,
            hint="fix the name, add a `Host` block with `HostName` to your ssh config, or use an IP address",
        ) from None


def _config_port(value: Any, ssh_config_path: Path | None, host: str) -> int:
    if value is None:
        return 22
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(
            f"Port {value!r} for host {host!r} is not a number", source=ssh_config_path, hint="fix the Port line"
        ) from None


def _identity_file(explicit: str | None, from_config: list[str], base: Path, source: Any, place: str) -> str | None:
    if explicit is not None:
        path = _expand(explicit, base)
        if not path.is_file():
            raise InputError(
                f"identity file {str(path)!r} not found", source=source, place=place,
                hint="fix the path, or remove identity_file to use ssh-agent",
            )
        return str(path)
    # Like ssh, identities named by the config that do not exist are skipped.
    for candidate in from_config:
        path = Path(os.path.expanduser(candidate))
        if path.is_file():
            return str(path)
    return None


def _parse_pool(f: Fields, known_hosts: Path, base: Path, source: Path) -> LabgridPool:
    """The `labgrid:` section, checked for shape here; whether its places and
    tags exist is the coordinator's to say, when a run asks for the pool
    (labgrid.check_pool, before any conversion)."""
    for key in f.data:
        if str(key).lower() in SECRET_KEYS:
            raise InputError(f"key {key!r} refused: passwords are never read from the inventory",
                             source=source, place=f"labgrid.{key}", hint="log in with a key: set identity_file")
    f.reject_unknown(POOL_KEYS)
    name = f.str("name", DEFAULT_POOL_NAME) or DEFAULT_POOL_NAME
    if not _NAME_RE.match(name) or name == LOCAL_DEVICE_NAME:
        raise InputError(f"pool name {name!r} is not a device name", source=source, place="labgrid.name",
                         hint="letters, digits, '.', '_' and '-', and not 'local'")
    coordinator = f.str("coordinator") or os.environ.get(COORDINATOR_ENV)
    if not coordinator:
        raise InputError("no labgrid coordinator", source=source, place="labgrid.coordinator",
                         hint=f"set `coordinator: HOST:PORT` or ${COORDINATOR_ENV} (labgrid's own variable)")
    if not re.match(r"^[A-Za-z0-9._-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$", coordinator):
        raise InputError(f"coordinator {coordinator!r} is not HOST:PORT", source=source, place="labgrid.coordinator",
                         hint="e.g. `coordinator: lab-coord.example:20408`")
    places = f.str_list("places")
    tags = _pool_tags(f, source)
    if bool(places) == bool(tags):
        raise InputError("name the places or the tags to match, not both and not neither", source=source,
                         place="labgrid", hint="`places: [rpi4-a, rpi4-b]` or `tags: {board: rpi4}` (with `count: N`)")
    if len(set(places)) != len(places):
        raise InputError("a place is named twice", source=source, place="labgrid.places", hint="name each place once")
    count = f.int("count", minimum=1)
    if count is not None and places:
        raise InputError("count goes with tags", source=source, place="labgrid.count",
                         hint="with `places:` every place named is held; drop `count:`")
    profile = f.str("profile", required=True)
    if profile not in available_profiles():
        close = difflib.get_close_matches(profile, available_profiles(), n=1)
        raise InputError(f"unknown profile {profile!r}", source=source, place="labgrid.profile",
                         hint=f"did you mean {close[0]!r}?" if close else f"known profiles: {', '.join(available_profiles())}")
    load_profile(profile)
    identity = _identity_file(f.str("identity_file"), [], base, source, "labgrid.identity_file")
    gateway = f.str("gateway")
    if gateway is not None:  # the form is checked now, the place's name later
        parse_gateway(gateway, name, getpass.getuser(), identity, known_hosts, source, "labgrid.gateway")
    template = Device(
        name=name, profile=profile, kind="ssh", python=f.str("python", "python3") or "python3",
        threads=f.int("threads", minimum=1), cpus=_cpus(f), cache_dir=f.str("cache_dir", Device.cache_dir) or Device.cache_dir,
        user=getpass.getuser(), identity_file=identity, known_hosts=str(known_hosts),
    )
    return LabgridPool(name, coordinator, places, tags, count or 1, template, source, gateway)


def _pool_tags(f: Fields, source: Path) -> tuple[tuple[str, str], ...]:
    value = f.data.get("tags")
    if value is None:
        return ()
    if not isinstance(value, dict) or not value or not all(
        isinstance(k, str) and isinstance(v, (str, int)) and not isinstance(v, bool) and k and "=" not in k
        for k, v in value.items()
    ):
        raise InputError(f"expected a mapping of tag to value, got {value!r}", source=source, place="labgrid.tags",
                         hint="tags: {board: rpi4}  (labgrid place tags are KEY=VALUE)")
    return tuple(sorted((k, str(v)) for k, v in value.items()))
