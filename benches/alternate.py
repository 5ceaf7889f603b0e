#!/usr/bin/env python3
"""Runs commands in alternation, one round at a time, so a load that comes and goes (other
builds on the machine) falls on all of them alike; prints each one's median and mean
wall time and its median's ratio to the first command's, and the CPU time (user +
system) it and every process it started used, with its ratio: on a loaded machine the
CPU time is the steadier measure of what a command costs.

    benches/alternate.py ROUNDS 'name=shell command' 'name=shell command' ...

Each command runs through `sh -c`; a failing one stops the run. The load average is
printed before and after.
"""
import statistics
import subprocess
import sys
import resource
import time


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    commands = [arg.split("=", 1) for arg in sys.argv[2:]]
    times = {name: [] for name, _ in commands}
    cpu = {name: [] for name, _ in commands}
    load = lambda: open("/proc/loadavg").read().split()[:3]
    print(f"load before: {' '.join(load())}; {rounds} rounds")
    for r in range(rounds):
        # Rotate who goes first, so none always follows the same neighbour.
        order = commands[r % len(commands):] + commands[: r % len(commands)]
        for name, cmd in order:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(["sh", "-c", cmd], check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(
                after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            )
    base = statistics.median(times[commands[0][0]])
    base_cpu = statistics.mean(cpu[commands[0][0]])
    for name, _ in commands:
        t = times[name]
        med = statistics.median(t)
        c = statistics.mean(cpu[name])
        print(
            f"{name:32} wall median {med * 1000:7.1f} ms (mean {statistics.mean(t) * 1000:7.1f})"
            f" ratio {med / base:5.2f} | CPU mean {c * 1000:6.1f} ms ratio {c / base_cpu:5.2f}"
        )
    print(f"load after: {' '.join(load())}")


main()
