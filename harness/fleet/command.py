"""`harness devices list|check|trust|bootstrap|clean`: the command's body.

Kept out of cli.py so the parser stays import-light (as gate/command.py is for
the gate); rich and paramiko load only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness import paths
from harness.device import local_device
from harness.errors import EXIT_INFRA, EXIT_OK, HarnessError, InputError
from harness.fleet import operations as fleet
from harness.fleet.bootstrap import bootstrap
from harness.fleet.inventory import INVENTORY_ENV, Inventory, empty_inventory, load_inventory
from harness.fleet.trust import changed_key_error, fetch_host_key, record_host_key
from harness.transport.ssh import jump_chain


def inventory_from(path: Path | None) -> "Inventory":
    """The inventory a command names: --inventory, else $HARNESS_INVENTORY, else none."""
    path = path or (Path(os.environ[INVENTORY_ENV]) if os.environ.get(INVENTORY_ENV) else None)
    return load_inventory(path) if path is not None else empty_inventory()


def run_devices(args: argparse.Namespace, reports: Path) -> int:
    """`harness devices list|check|trust|bootstrap|clean`."""
    from rich.console import Console


    inventory = inventory_from(args.inventory)
    local = local_device(paths.cache_dir(reports).resolve() / "local-device")
    pool = inventory.pool(args.names or ())
    if pool is not None:
        raise InputError(
            f"{pool.name!r} is the inventory's labgrid pool: its places are held by `harness run` only",
            source="NAMES", hint=f"see the places with `labgrid-client -x {pool.coordinator} -v places`; "
                                 "name inventory devices here",
        )
    if args.names:
        devices = inventory.select(args.names, local=local, flag="NAMES")
    elif args.action in ("list", "check"):
        devices = (local, *inventory.devices)
    else:
        devices = inventory.devices
    out = Console()
    if args.action == "list":
        from harness.report.devices import render_inventory

        render_inventory(devices, out, source=str(inventory.source or "no inventory: pass --inventory FILE"))
        return EXIT_OK
    if args.action == "trust":
        return _trust(devices, yes=args.yes, console=out)
    if args.action == "clean":
        failed = False
        for result in fleet.fan_out(devices, fleet.clean):
            if result.error:
                failed = True
                out.print(f"[red]✗[/red] {result.device.name}: not cleaned: {result.error}")
            else:
                out.print(f"[green]✓[/green] {result.device.name}: removed {result.path}")
        return EXIT_INFRA if failed else EXIT_OK
    if args.action == "bootstrap":
        return _bootstrap(devices, out, reports)
    from harness.report.devices import render_probes

    probes = fleet.fan_out(devices, fleet.probe)
    render_probes(probes, out, title=f"devices {args.action}")
    unusable = [p for p in probes if not p.reachable or p.untrusted]
    return EXIT_INFRA if unusable else EXIT_OK


def _bootstrap(devices, out, reports: Path) -> int:

    cache = paths.cache_dir(reports)
    remote = [d for d in devices if d.kind == "ssh"]
    for device in devices:
        if device.kind != "ssh":
            out.print(f"{device.name}: this machine; its runtime comes with `pip install edge-harness[runtime]`")
    failed = False
    for result in fleet.fan_out(remote, lambda d: bootstrap(d, cache)):
        for step in result.steps:
            out.print(f"  {result.device.name}: {step}")
        if result.ok:
            out.print(f"[green]✓[/green] {result.device.name}: agent runs with {result.runtime} "
                      f"({result.python}); sent {result.bytes_uploaded / 1e6:.1f} MB in {result.seconds:.1f} s")
        else:
            failed = True
            hint = f"\n    fix: {result.hint}" if result.hint else ""
            out.print(f"[red]✗[/red] {result.device.name}: {result.error}{hint}")
    return EXIT_INFRA if failed else EXIT_OK


def _trust(devices, *, yes: bool, console) -> int:

    failed = False
    # Each jump host is trusted before what lies behind it (the key exchange
    # runs through it), once however many devices share it; all end up pinned.
    hops = [hop for device in devices for hop in jump_chain(device)]
    for device in dict.fromkeys(hops):
        if device.kind != "ssh":
            console.print(f"{device.name}: this machine, nothing to trust")
            continue
        try:
            check = fetch_host_key(device)
            if check.state == "trusted":
                console.print(f"[green]✓[/green] {device.name} ({check.name}): already trusted, {check.key_type} {check.fingerprint}")
                continue
            if check.state == "changed":
                raise changed_key_error(check)
            console.print(f"{device.name} ({check.name}) offers {check.key_type} key {check.fingerprint}")
            if not yes and not _confirm(f"Trust this key for {device.name}? [y/N] "):
                console.print(f"[yellow]![/yellow] {device.name}: not trusted (pass --yes to accept without asking)")
                failed = True
                continue
            record_host_key(check)
            console.print(f"[green]✓[/green] {device.name}: recorded in {check.known_hosts}")
        except HarnessError as exc:
            failed = True
            sys.stderr.write(f"harness devices trust: error: {exc.render()}\n")
    return EXIT_INFRA if failed else EXIT_OK


def _confirm(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
