"""GPU check: NVML energy counter vs integrated polled power, on an idle phase and on a steady matmul load.

Run on a machine with an NVIDIA GPU (Volta or newer for the counter)::

    .venv/bin/python benchmarks/nvml_check.py --seconds 60 --idle-seconds 10 --device cuda:0

It prints, for each phase, the counter delta (J), the power integral (J, 10 Hz polling of
``nvmlDeviceGetPowerUsage``), their ratio and the mean power, and one JSON line at the end for the record.
A ratio within a few percent of 1 on the load phase is expected (Zeus #12); the meter itself only
abandons the counter outside 0.1..10.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from carbon_callbacks.meters.nvml import NvmlMeter


def _matmuls(seconds: float, device: torch.device, size: int) -> int:
    """Back-to-back fp32 matmuls for ``seconds``; returns how many ran."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(10):
            a = torch.matmul(a, b) / size**0.5
        torch.cuda.synchronize(device)
        count += 10
    return count


def _phase(name: str, seconds: float, device: torch.device, size: int, busy: bool) -> dict[str, float | str]:
    counter = NvmlMeter(device, check_interval_s=None)
    power = NvmlMeter(device, use_counter=False, poll_interval_s=0.1)
    counter.start()
    power.start()
    t0 = time.monotonic()
    matmuls = _matmuls(seconds, device, size) if busy else (time.sleep(seconds) or 0)
    torch.cuda.synchronize(device)
    counter_j = counter.read()["gpu"].energy_j
    power_j = power.read()["gpu"].energy_j
    elapsed_s = time.monotonic() - t0
    counter.close()
    power.close()
    result = {
        "phase": name,
        "gpu": counter.describe()["gpu_name"],
        "uuid": counter.describe()["gpu_uuid"],
        "counter_method": counter.method,
        "seconds": round(elapsed_s, 3),
        "matmuls": matmuls,
        "counter_j": round(counter_j, 1),
        "power_integral_j": round(power_j, 1),
        "ratio_counter_over_integral": round(counter_j / power_j, 4) if power_j > 0 else float("nan"),
        "mean_power_w_counter": round(counter_j / elapsed_s, 1),
        "mean_power_w_integral": round(power_j / elapsed_s, 1),
    }
    print(
        f"{name:>5}: {elapsed_s:6.1f} s  counter {counter_j:10.1f} J  integral {power_j:10.1f} J  "
        f"ratio {result['ratio_counter_over_integral']}  ({result['mean_power_w_counter']} W vs "
        f"{result['mean_power_w_integral']} W)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the matmul phase")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="length of the idle phase (0: skip)")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--size", type=int, default=8192, help="matrix side")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.cuda.init()
    results = []
    if args.idle_seconds > 0:
        results.append(_phase("idle", args.idle_seconds, device, args.size, busy=False))
    results.append(_phase("load", args.seconds, device, args.size, busy=True))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
