"""Benches over a real round trip: every sandbox answer delayed by `--rtt` seconds.

The sandboxes answer in about 3 ms; real clouds in 100-300 ms. With `--rtt 0.15` each
request waits 0.15 s in the sandbox (its `delay_seconds` switch), and a bench reports the
floor no client can beat: requests x RTT / concurrency, or the request budget's floor where
that is higher, and wall / floor (issue 16's goal: at most 1.3).
"""

import argparse
import math

import httpx


def arguments(description: str, **extra) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--rtt", type=float, default=0.0, help="seconds each sandbox answer is delayed"
    )
    for name, options in extra.items():
        parser.add_argument(f"--{name}", **options)
    return parser.parse_args()


def set_delay(base_url: str, kind: str, rtt: float, key: str = "") -> None:
    """Delay every answer of the kind's sandbox by `rtt` (after a reset, which clears it);
    KnowBe4's switches are per key."""
    if kind.startswith("knowbe4"):
        url = f"{base_url}/_sandbox/knowbe4/keys/{key}"
    else:
        url = f"{base_url}/_sandbox/{kind}/faults"
    httpx.post(url, json={"delay_seconds": rtt}).raise_for_status()


def floor(requests: int, rtt: float, concurrency: int, rates=()) -> float:
    """The least wall time `requests` can take: round trips `concurrency` at a time, and no
    faster than each budget rate (pyrate-limiter `Rate`s) lets them go after its first burst."""
    waves = math.ceil(requests / max(concurrency, 1)) * rtt
    budget = max(
        ((math.ceil(requests / rate.limit) - 1) * rate.interval / 1000 for rate in rates),
        default=0.0,
    )
    return max(waves, budget)


def ratio(wall: float, floor_seconds: float) -> str:
    return f"{wall / floor_seconds:.2f}" if floor_seconds else "-"
