"""The churn benchmark's helpers (bench/churn.sh): the pacer and the table.

  churn.py pace TRACE EVENTS STAMPS RATE PUB NODES_FILE COPY_DIR
      append TRACE's lines to EVENTS (the file `watch` follows) at RATE lines
      a second, writing each line's send time (Unix seconds) to STAMPS; while
      it runs, copy the membership documents of the nodes in NODES_FILE (the
      real agents') from PUB/membership into COPY_DIR, so a snapshot that
      replaces their deltas loses nothing.
  churn.py table DIR
      match documents to events and print the table (see churn.sh).
"""
import base64
import json
import os
import re
import shutil
import statistics
import sys
import threading
import time
import zlib


def pace(trace, events, stamps, rate, pub, nodes_file, copy_dir):
    lines = open(trace).read().splitlines(keepends=True)
    rate = float(rate)
    nodes = [n for n in open(nodes_file).read().split() if n]
    done = threading.Event()

    def copier():
        seen = {}
        while True:
            for n in nodes:
                src = os.path.join(pub, "membership", n)
                dst = os.path.join(copy_dir, n)
                os.makedirs(dst, exist_ok=True)
                try:
                    # As an agent reads: deltas up to `head` only (one past
                    # it may still be being written).
                    head = int(open(os.path.join(src, "head")).read())
                    names = os.listdir(src)
                except (FileNotFoundError, ValueError):
                    continue
                for name in names:
                    if (name.endswith(".delta") and int(name.split(".")[0]) <= head
                            and not os.path.exists(os.path.join(dst, name))):
                        try:
                            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
                        except FileNotFoundError:
                            pass
                try:
                    snap = open(os.path.join(src, "snapshot"), "rb").read()
                except FileNotFoundError:
                    continue
                if seen.get(n) != snap:
                    seen[n] = snap
                    seq = decode(snap)["sequence"]
                    with open(os.path.join(dst, f"{seq}.snapshot"), "wb") as f:
                        f.write(snap)
            if done.is_set():
                return
            time.sleep(0.05)

    t = threading.Thread(target=copier)
    t.start()
    sent = []
    with open(events, "a") as out:
        start = time.time()
        for i, line in enumerate(lines):
            due = start + i / rate
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            out.write(line)
            out.flush()
            sent.append(time.time())
    with open(stamps, "w") as f:
        f.write("".join(f"{s:.6f}\n" for s in sent))
    time.sleep(3)
    done.set()
    t.join()
    lag = max(s - (start + i / rate) for i, s in enumerate(sent))
    print(f"paced {len(lines)} events in {sent[-1] - start:.1f} s (latest {lag * 1000:.0f} ms behind)", file=sys.stderr)


def decode(envelope):
    """A membership document's payload; a snapshot's is a zlib stream."""
    e = json.loads(envelope)
    raw = base64.b64decode(e["payload"])
    return json.loads(zlib.decompress(raw) if e["payloadType"].endswith("+zlib") else raw)


def payload(path):
    return decode(open(path, "rb").read())


def atoms(m):
    """A membership as a set of (key, atom): key names the address or pod."""
    out = set()
    for s in m.get("sets", []):
        for a in s.get("addresses", []):
            out.add((a, ("set", s["name"], a)))
    for e in m.get("endpoints", []):
        j = json.dumps(e, sort_keys=True)
        out.add((e["name"], ("ep", j)))
        for a in e.get("addresses", []):
            out.add((a, ("ep", j)))
    for t in m.get("targets", []):
        j = json.dumps(t, sort_keys=True)
        out.add((t["endpoint"], ("tg", j)))
        for a in t.get("addresses", []):
            out.add((a, ("tg", j)))
    return out


def apply_delta(m, c):
    """A delta's changes applied to membership `m` (a dict), as the agent does."""
    sets = {s["name"]: set(s["addresses"]) for s in m.get("sets", [])}
    for sc in c.get("sets", []):
        s = sets.setdefault(sc["name"], set())
        s -= set(sc.get("remove", []))
        s |= set(sc.get("add", []))
    eps = {e["name"]: e for e in m.get("endpoints", [])}
    for n in c.get("endpoints_removed", []):
        eps.pop(n, None)
    for e in c.get("endpoints", []):
        eps[e["name"]] = e
    tgs = {(t["exposure"], t["endpoint"]): t for t in m.get("targets", [])}
    for t in c.get("targets_removed", []):
        tgs.pop((t["exposure"], t["endpoint"]), None)
    for t in c.get("targets", []):
        tgs[(t["exposure"], t["endpoint"])] = t
    return {
        "sets": [{"name": k, "addresses": sorted(v)} for k, v in sets.items() if v],
        "endpoints": list(eps.values()),
        "targets": list(tgs.values()),
    }


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def table(d):
    rows = [l.rstrip("\n").split("\t") for l in open(f"{d}/c/churn.tsv")][1:]
    stamps = [float(x) for x in open(f"{d}/stamps").read().split()]
    start, end = stamps[0], stamps[-1]
    key_event = {}
    for i, r in enumerate(rows):
        key_event[f"pod/{r[3]}"] = i
        for a in r[5].split(","):
            key_event[a] = i
    # (node, seq, kind, at, bytes, keys, real, fresh): `fresh` are a
    # snapshot's keys in sets the node did not declare before (a re-rendered
    # node learns them with its new chains, not because their pods changed).
    docs = []
    for l in open(f"{d}/sim.jsonl"):
        r = json.loads(l)
        if r.get("refused"):
            docs.append((r["node"], 0, "refused:" + r["refused"], r["at"], r["bytes"], [], False, []))
        else:
            docs.append((r["node"], r["sequence"], r["kind"], r["at"], r["bytes"], r["keys"], False,
                         r.get("fresh", [])))
    applied = re.compile(r"membership (delta|snapshot) (\d+) of generation (\d+) applied: (\d+) bytes, at ([\d.]+)")
    real_nodes = [n for n in open(f"{d}/real.txt").read().split() if n]
    refusals = {}
    for n in real_nodes:
        # The node's documents, replayed to know what each one changed.
        copied = {}
        for name in os.listdir(f"{d}/copy/{n}"):
            seq, kind = name.split(".")
            copied[int(seq)] = (kind, payload(f"{d}/copy/{n}/{name}"))
        # Without the bundles of past generations, a set the node "declared"
        # is one it has held an address in before.
        state, changed, fresh, seen = None, {}, {}, set()
        for seq in sorted(copied):
            kind, p = copied[seq]
            nxt = p["membership"] if kind == "snapshot" else apply_delta(state or {}, p["changes"])
            if state is not None:
                diff = atoms(state) ^ atoms(nxt)
                new = {k for k, a in diff if kind == "snapshot" and a[0] == "set" and a[1] not in seen}
                changed[seq] = sorted({k for k, _ in diff} - new)
                fresh[seq] = sorted(new)
            seen |= {s["name"] for s in nxt.get("sets", [])}
            state = nxt
        for line in open(f"{d}/agents/{n}.log"):
            m = applied.search(line)
            if m:
                seq = int(m.group(2))
                docs.append((n, seq, m.group(1), float(m.group(5)), int(m.group(4)), changed.get(seq, []), True,
                             fresh.get(seq, [])))
            elif "refused" in line:
                refusals[n] = refusals.get(n, 0) + 1
    # (event, node) -> (applied at, real)
    pairs, raw = {}, {}
    doc_bytes = {True: 0, False: 0}
    delta_bytes = 0
    snap_events = set()
    unmatched = 0
    refused = [x for x in docs if x[2].startswith("refused")]
    for node, seq, kind, at, nbytes, keys, real, fresh in docs:
        if kind.startswith("refused") or at < start - 1:
            continue
        evs = {key_event[k] for k in keys if k in key_event}
        for e in {key_event[k] for k in list(keys) + list(fresh) if k in key_event}:
            raw.setdefault((e, node), at)
        if not evs and not any(k in key_event for k in fresh):
            unmatched += 1
            continue
        doc_bytes[real] += nbytes
        if kind == "delta":
            delta_bytes += nbytes
        for e in evs:
            if kind == "snapshot":
                snap_events.add(e)
            pairs.setdefault((e, node), (at, real, kind == "snapshot"))
    lat = {True: [], False: []}
    # By how the node got the event: a delta (its rules stayed), or the
    # snapshot of a new generation (it was re-rendered, for this event or
    # for another of the same batch).
    kind_lat = {True: [], False: []}
    per_event = {}
    for (e, node), (at, real, snap) in pairs.items():
        x = at - stamps[e]
        lat[real].append(x)
        kind_lat[snap].append(x)
        per_event[e] = max(per_event.get(e, 0), x)
    every = list(per_event.values())
    raw_lat = [at - stamps[e] for (e, _), at in raw.items()]
    raw_every = {}
    for (e, _), at in raw.items():
        raw_every[e] = max(raw_every.get(e, 0), at - stamps[e])
    allv = lat[True] + lat[False]
    meta = json.load(open(f"{d}/meta.json"))
    cpu = meta["watch_cpu_s"] / meta["trace_s"]
    untouched = len(rows) - len(per_event)
    print()
    print(f"churn: {len(rows)} pod events in {end - start:.1f} s; {meta['clients']} clients "
          f"({len(real_nodes)} real agents in netns, {meta['clients'] - len(real_nodes)} simulated); "
          f"{len(pairs)} (event, node) pairs matched, {untouched} events changed no node, "
          f"{unmatched} documents matched no event, {len(refused)} refused by simulated clients, "
          f"{sum(refusals.values())} refusal log lines from real agents")
    print()
    print("| figure | goal | measured |")
    print("|---|---|---|")
    ms = lambda v: f"{v * 1000:.0f} ms"
    print(f"| event sent → applied, every (event, node), p50 / p99 | ≤ 0.3 s / ≤ 1 s | {ms(pct(allv, 50))} / {ms(pct(allv, 99))} (max {ms(max(allv))}) |")
    print(f"| … on the real agents (nft in the kernel), p50 / p99 | | {ms(pct(lat[True], 50))} / {ms(pct(lat[True], 99))} over {len(lat[True])} pairs |")
    print(f"| … on the simulated clients, p50 / p99 | | {ms(pct(lat[False], 50))} / {ms(pct(lat[False], 99))} over {len(lat[False])} pairs |")
    print(f"| … (event, node) pairs sent as a delta (the node's rules stayed), p50 / p99 | | {ms(pct(kind_lat[False], 50))} / {ms(pct(kind_lat[False], 99))} over {len(kind_lat[False])} pairs |")
    print(f"| … pairs sent in the snapshot of a re-rendered node, p50 / p99 | | {ms(pct(kind_lat[True], 50))} / {ms(pct(kind_lat[True], 99))} over {len(kind_lat[True])} pairs |")
    print(f"| event sent → applied on its last affected node, p50 / p99 | | {ms(pct(every, 50))} / {ms(pct(every, 99))} |")
    print(f"| … counting the addresses a re-rendered node learns with sets it did not declare before (matched to their pods' events, however old), every pair / last node, p99 | | {ms(pct(raw_lat, 99))} (max {ms(max(raw_lat))}) / {ms(pct(list(raw_every.values()), 99))} over {len(raw)} pairs |")
    print(f"| affected nodes per event, mean / max | | {len(pairs) / max(1, len(per_event)):.1f} / {max(collections_count(pairs).values(), default=0)} |")
    total_bytes = doc_bytes[True] + doc_bytes[False]
    delta_pairs = len(kind_lat[False])
    print(f"| bytes sent per affected node per pod event | ≤ 2 KB | {total_bytes / max(1, len(pairs)):.0f} B (documents; {total_bytes / 1e6:.1f} MB in all); deltas alone {delta_bytes / max(1, delta_pairs):.0f} B over the pairs they carry |")
    print(f"| pod events that needed a re-render (existing classes) | 0 | {meta['rerenders']} generations re-rendering {meta['rerendered_nodes']} node bundles (a node lacking a class's chains); {len(snap_events)} events reached some node in such a snapshot; the other nodes of a batch got their deltas first |")
    print(f"| controller (watch) CPU at {len(rows) / (end - start):.0f} events/s | ≤ 0.5 core | {cpu:.2f} core ({meta['watch_cpu_s']:.1f} s CPU over {meta['trace_s']:.0f} s) |")
    print(f"| agent RSS while following (real agents, max of {len(real_nodes)}) | ≤ 15 MiB | {meta['agent_rss_kib'] / 1024:.1f} MiB (peak incl. the first bundle apply {meta['agent_hwm_kib'] / 1024:.1f} MiB) |")
    print(f"| one watch serving {meta['clients']} long-poll agents: memory | ≤ 1 GiB | {meta['watch_rss_kib'] / 1024:.0f} MiB RSS (peak {meta['watch_hwm_kib'] / 1024:.0f} MiB; {meta['watch_rss_before_kib'] / 1024:.0f} MiB before the clients; {meta['watch_threads']} threads) |")
    print()
    print(f"simulated clients' process: {meta['sim_rss_kib'] / 1024:.0f} MiB peak RSS, {meta['sim_cpu_s']:.1f} s CPU over the trace")
    print(f"watch was done {meta['drain_s']:.1f} s after the last event was sent ({meta['watch_cpu_drain_s']:.1f} s CPU from the first event until then)")


def collections_count(pairs):
    c = {}
    for e, _ in pairs:
        c[e] = c.get(e, 0) + 1
    return c


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"pace": pace, "table": table}[cmd](*args)
