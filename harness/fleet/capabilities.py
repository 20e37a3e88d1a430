"""Which (device, variant) pairs can run, and why a pair cannot.

A variant declares what it needs (`VariantSpec.requires`), a device's
profile what it offers (`capabilities`). A pair that cannot run is recorded
`skipped` with the reason, never silently dropped (STYLE.md, lesson 7); so
is a variant this host cannot produce (no Edge TPU compiler). The record
itself is built where every unmeasured record is (measure.pair).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.edgetpu.compiler import Unavailable
from harness.fleet.profiles import Profile, available_profiles, load_profile
from harness.model.variants import VARIANTS
from harness.results.record import EdgeTpuReport


@dataclass(frozen=True)
class SkipReason:
    """Why a pair is skipped: ``kind`` goes into the record's error."""

    kind: str
    message: str
    edgetpu: EdgeTpuReport | None = None


def missing_capabilities(profile: Profile, variant: str) -> list[str]:
    spec = VARIANTS.get(variant)
    return sorted((spec.requires if spec else frozenset()) - profile.capabilities)


def capability_reason(profile: Profile, variant: str) -> str | None:
    missing = missing_capabilities(profile, variant)
    if not missing:
        return None
    offering = [name for name in available_profiles() if set(missing) <= load_profile(name).capabilities]
    where = f" (profiles that do: {', '.join(offering)})" if offering else ""
    return f"device profile {profile.name} does not offer {', '.join(missing)}, which {variant} needs{where}"


def skip_reason(profile: Profile | None, variant: str, artifact: object) -> SkipReason | None:
    """Why this pair cannot run here (the variant could not be made on this
    host, or the device's profile lacks what it needs), else None."""
    reasons: list[str] = []
    kind = "capability"
    edgetpu = None
    if isinstance(artifact, Unavailable):
        reasons.append(artifact.message)
        kind, edgetpu = artifact.kind, artifact.edgetpu
    if profile is not None:
        reason = capability_reason(profile, variant)
        if reason:
            reasons.append(reason)
    if not reasons:
        return None
    return SkipReason(kind, "; ".join(reasons), edgetpu)
