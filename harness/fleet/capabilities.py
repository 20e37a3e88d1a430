"""Which (device, variant) pairs can run, and the record for those that cannot.

A variant declares what it needs (`VariantSpec.requires`), a device's
profile what it offers (`capabilities`). A pair that cannot run is recorded
`skipped` with the reason, never silently dropped (STYLE.md, lesson 7); so
is a variant this host cannot produce (no Edge TPU compiler).
"""

from __future__ import annotations

from typing import Any

from harness import __version__
from harness.edgetpu.compiler import Unavailable
from harness.fleet.profiles import Profile, available_profiles, load_profile
from harness.results.record import ErrorInfo, ModelInfo, Record
from harness.model.variants import VARIANTS


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


def skip_record(ctx: Any, model: str, variant: str, artifact: Any) -> Record | None:
    """The `skipped` record for a pair that cannot run here, else None.
    `ctx` is the runner's PairContext (device info and profile)."""
    reasons: list[str] = []
    kind = "capability"
    edgetpu = None
    if isinstance(artifact, Unavailable):
        reasons.append(artifact.message)
        kind, edgetpu = artifact.kind, artifact.edgetpu
    profile = getattr(ctx, "profile", None)
    if profile is not None:
        reason = capability_reason(profile, variant)
        if reason:
            reasons.append(reason)
    if not reasons:
        return None
    return Record(
        run_id=ctx.run_id,
        harness_version=__version__,
        device=ctx.device_info,
        model=ModelInfo(name=model, variant=variant),
        status="skipped",
        error=ErrorInfo(kind=kind, message="; ".join(reasons)),
        threads=ctx.threads,
        edgetpu=edgetpu,
    )
