"""Energy per inference from a power sensor's samples: pure arithmetic, no I/O.

The agent samples the device's power source (devices/agent.py `PowerWindow`)
over an idle window before the timed loop and over the timed loop itself,
and replies with the raw samples of both: (monotonic ns, watts), with one
sample at each edge of each window. Here:

    E_window = integral of P(t) dt over the window, by the trapezoid rule
               over the samples (J, with t in s)
    P_idle   = E_idle / T_idle            (the idle window's mean power)
    P_active = E_active / T_active
    mJ per inference = 1000 * (E_active - P_idle * T_active) / invokes

summed over every round's windows before dividing, so a pair measured in
several rounds gets one figure from all its invokes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

Sample = Sequence[float]  # (monotonic ns, watts)


def window_energy_j(samples: Sequence[Sample]) -> float:
    """Trapezoid integral of watts over the samples' span, in joules:
    sum over consecutive samples of (P_i + P_i+1) / 2 * (t_i+1 - t_i)."""
    ordered = sorted(samples, key=lambda s: s[0])
    return sum((a[1] + b[1]) / 2.0 * (b[0] - a[0]) / 1e9 for a, b in zip(ordered, ordered[1:]))


def window_span_ns(samples: Sequence[Sample]) -> tuple[int, int]:
    """(first, last) sample time: the span the integral covers."""
    times = [int(s[0]) for s in samples]
    return min(times), max(times)


def window_span_s(samples: Sequence[Sample]) -> float:
    first, last = window_span_ns(samples)
    return (last - first) / 1e9


@dataclass(frozen=True)
class EnergyTotals:
    """What the rounds' windows add up to."""

    active_j: float
    active_s: float
    idle_j: float
    idle_s: float
    invokes: int
    samples: int
    # Per round: (idle first, idle last, active first, active last) sample ns.
    windows_ns: tuple[tuple[int, int, int, int], ...] = ()

    @property
    def idle_power_w(self) -> float | None:
        return self.idle_j / self.idle_s if self.idle_s > 0 else None

    @property
    def power_w(self) -> float | None:
        return self.active_j / self.active_s if self.active_s > 0 else None

    @property
    def mj_per_inference(self) -> float | None:
        """Active minus idle energy over the timed loop, per invoke."""
        idle = self.idle_power_w
        if idle is None or not self.invokes or self.active_s <= 0:
            return None
        return 1000.0 * (self.active_j - idle * self.active_s) / self.invokes


def energy_totals(replies: Sequence[dict[str, Any]]) -> EnergyTotals | None:
    """The agent's `energy` parts of a pair's replies, summed; None when no
    reply measured energy."""
    parts = [r for r in replies if r and r.get("idle") and r.get("active")]
    if not parts:
        return None
    return EnergyTotals(
        active_j=sum(window_energy_j(p["active"]["samples"]) for p in parts),
        active_s=sum(window_span_s(p["active"]["samples"]) for p in parts),
        idle_j=sum(window_energy_j(p["idle"]["samples"]) for p in parts),
        idle_s=sum(window_span_s(p["idle"]["samples"]) for p in parts),
        invokes=sum(int(p.get("invokes") or 0) for p in parts),
        samples=sum(len(p["active"]["samples"]) + len(p["idle"]["samples"]) for p in parts),
        windows_ns=tuple(window_span_ns(p["idle"]["samples"]) + window_span_ns(p["active"]["samples"]) for p in parts),
    )
