"""Which devices a test runs on: names or a tag against the selected fleet.

Pure: the inventory is already loaded. A device a test needs but the fleet
does not have becomes a skip with the reason a person needs (which inventory,
which devices it has), never a silent absence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from harness.device import Device
from harness.fleet.inventory import Inventory


@dataclass(frozen=True)
class DeviceParam:
    """One parametrisation of a device test: a device, or why there is none."""

    id: str
    device: Device | None
    skip_reason: str | None = None


def _where(inventory: Inventory) -> str:
    return f"inventory {inventory.source}" if inventory.source else "no inventory given (--harness-inventory FILE)"


def _not_selected(name: str, selected: Sequence[Device]) -> str:
    return f"device {name!r} is not selected (--harness-devices {','.join(d.name for d in selected)})"


def device_params(
    inventory: Inventory,
    selected: Sequence[Device],
    names: Sequence[str] = (),
    tag: str | None = None,
) -> list[DeviceParam]:
    """The devices a test asks for (`names`, or those tagged `tag`, or every
    selected device), in the fleet's order for a tag and the asked order for names."""
    by_name = {d.name: d for d in selected}
    known = {d.name for d in inventory.devices} | {"local"}
    params: list[DeviceParam] = []
    for name in names:
        if name in by_name:
            params.append(DeviceParam(name, by_name[name]))
        elif name in known:
            params.append(DeviceParam(name, None, _not_selected(name, selected)))
        else:
            have = ", ".join(sorted(known))
            params.append(DeviceParam(name, None, f"device {name!r} is not in the fleet: {_where(inventory)}; devices: {have}"))
    if tag is not None:
        tagged = [d for d in selected if tag in d.tags]
        params.extend(DeviceParam(d.name, d) for d in tagged if d.name not in names)
        if not tagged:
            tags = sorted({t for d in selected for t in d.tags})
            reason = (
                f"no selected device is tagged {tag!r} ({_where(inventory)}; "
                f"selected: {', '.join(d.name for d in selected)}; their tags: {', '.join(tags) or 'none'})"
            )
            params.append(DeviceParam(f"tag-{tag}", None, reason))
    if not names and tag is None:
        params = [DeviceParam(d.name, d) for d in selected]
    return params
