"""What `/usr/bin/time -v -o FILE` measured, for the benchmarks' one-line reports."""
import re


def measured(path):
    """(wall seconds, CPU seconds, peak RSS in MiB, 1-minute load average) of one run."""
    t = open(path).read()

    def num(pattern):
        return re.search(pattern, t).group(1)

    wall = num(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)")
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    cpu = float(num(r"User time \(seconds\): ([\d.]+)")) + float(num(r"System time \(seconds\): ([\d.]+)"))
    rss = int(num(r"Maximum resident set size \(kbytes\): (\d+)")) / 1024
    load = open("/proc/loadavg").read().split()[0]
    return secs, cpu, rss, load
