#!/usr/bin/env python3
"""Write the Aerleon policy of research/compiler.md §1.7 into DIR:
50 network tokens of 400 IPv4 + 100 IPv6 /32s and /128s, 200 terms
(source NET[i % 50], destination NET[7i % 50], two TCP port ranges),
target `nftables mixed INPUT`. aerleon_equivalent.rs builds the same
policy as a ringfence IR from the same formulas."""
import os
import sys

TOKENS, V4, V6, TERMS = 50, 400, 100, 200


# Every other address, so neither tool can aggregate the /32s away.
def v4(t, j):
    return f"10.{t}.{j // 128}.{2 * (j % 128)}"


def v6(t, j):
    return f"2001:db8:{t:x}::{2 * j + 1:x}"


def ports(i):
    return [(1000 + 10 * i, 1005 + 10 * i), (20000 + i, 20002 + i)]


def main(out):
    os.makedirs(f"{out}/def", exist_ok=True)
    os.makedirs(f"{out}/policies/pol", exist_ok=True)
    with open(f"{out}/def/NETWORK.net", "w") as f:
        for t in range(TOKENS):
            addrs = [f"{v4(t, j)}/32" for j in range(V4)] + [f"{v6(t, j)}/128" for j in range(V6)]
            f.write(f"NET{t} = {addrs[0]}\n")
            for a in addrs[1:]:
                f.write(f"    {a}\n")
            f.write("\n")
    with open(f"{out}/def/SERVICES.svc", "w") as f:
        for i in range(TERMS):
            (a, b), (c, d) = ports(i)
            f.write(f"PORTS{i} = {a}-{b}/tcp\n    {c}-{d}/tcp\n\n")
    with open(f"{out}/policies/pol/bench.pol", "w") as f:
        f.write("header {\n  target:: nftables mixed INPUT\n}\n\n")
        for i in range(TERMS):
            f.write(
                f"term t{i} {{\n"
                f"  source-address:: NET{i % TOKENS}\n"
                f"  destination-address:: NET{(7 * i) % TOKENS}\n"
                f"  destination-port:: PORTS{i}\n"
                f"  protocol:: tcp\n"
                f"  action:: accept\n"
                f"}}\n\n"
            )


if __name__ == "__main__":
    main(sys.argv[1])
