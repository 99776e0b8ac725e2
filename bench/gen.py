#!/usr/bin/env python3
"""Synthetic feeds and query files for the benchmarks (deterministic: seeded).

  gen.py feed N OUT [--format domains|threatfox-csv|hosts]   N realistic IOC domains + the seed IOCs
  gen.py queries FEED N OUT --mix blocked|allowed|mix [--allowed-pool K]   dnsperf query files
  gen.py zone N OUT                                           allowed names as a zone file for nsd

Allowed names are allowed-<i>.example.com (the upstream serves them); blocked names are
picked from the feed, half as the listed name and half as a subdomain of it.
"""
import random
import sys

TLDS = ["com", "net", "org", "info", "xyz", "top", "sbs", "online", "site", "ru", "cn", "io", "shop", "club"]
WORDS = ["secure", "login", "update", "cdn", "api", "mail", "cloud", "verify", "account", "service",
         "portal", "sync", "data", "app", "web", "static", "files", "auth", "pay", "track", "stat"]
FAMILIES = ["ClearFake", "Lumma Stealer", "Cobalt Strike", "Remcos", "AsyncRAT", "Amadey", "RedLine Stealer"]
THREATS = ["botnet_cc", "payload_delivery"]
SEED = ["geschmeidig6307-kotyatanet.sbs", "ws.geschmeidig6307-kotyatanet.sbs"]


def domain(rng, i):
    label = rng.choice(WORDS) + rng.choice(WORDS) + str(i)
    if rng.random() < 0.3:
        label = rng.choice(WORDS) + "." + label
    return f"{label}-{rng.randrange(10**6):06d}.{rng.choice(TLDS)}"


def feed(n, out, fmt):
    rng = random.Random(42)
    with open(out, "w") as f:
        if fmt == "threatfox-csv":
            f.write("################################################################\n")
            f.write("# ThreatFox IOCs: synthetic benchmark export - CSV format      #\n")
            f.write("################################################################\n")
            f.write('# "first_seen_utc","ioc_id","ioc_value","ioc_type","threat_type","fk_malware","malware_alias",'
                    '"malware_printable","last_seen_utc","confidence_level","is_compromised","reference","tags",'
                    '"anonymous","reporter"\n')
        names = SEED + [domain(rng, i) for i in range(n)]
        for i, name in enumerate(names):
            if fmt == "domains":
                f.write(name + "\n")
            elif fmt == "hosts":
                f.write(f"0.0.0.0 {name}\n")
            else:
                fam = rng.choice(FAMILIES)
                day = 1 + i % 28
                f.write(f'"2026-11-{day:02d} 12:{i % 60:02d}:00", "{1000000 + i}", "{name}", "domain", '
                        f'"{rng.choice(THREATS)}", "win.{fam.lower().replace(" ", "_")}", "None", "{fam}", '
                        f'"None", "{rng.choice([50, 75, 100])}", "False", "None", "{fam}", "0", "bench"\n')
        if fmt == "threatfox-csv":
            f.write(f"# Number of entries: {len(names)}\n")


def read_feed_names(path):
    names = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith('"'):
                names.append(line.split('", "')[2])
            else:
                names.append(line.split()[-1])
    return names


def queries(feed_path, n, out, mix, allowed_pool=1000):
    rng = random.Random(7)
    listed = read_feed_names(feed_path)
    # allowed_pool: the working set of allowed names (1000 stays cached after warm-up).
    with open(out, "w") as f:
        for i in range(n):
            blocked = mix == "blocked" or (mix == "mix" and rng.random() < 0.05)
            if blocked:
                name = rng.choice(listed)
                if rng.random() < 0.5:
                    name = "www." + name
            else:
                name = f"allowed-{rng.randrange(allowed_pool)}.example.com"
            f.write(f"{name} {rng.choice(['A', 'A', 'A', 'AAAA'])}\n")


def zone(n, out):
    with open(out, "w") as f:
        f.write("$ORIGIN example.com.\n$TTL 3600\n")
        f.write("@ IN SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 300\n")
        f.write("@ IN NS ns.example.com.\nns IN A 127.0.0.1\n")
        for i in range(n):
            f.write(f"allowed-{i} IN A 192.0.2.{i % 250 + 1}\n")
            f.write(f"allowed-{i} IN AAAA 2001:db8::{i % 65000 + 1:x}\n")


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    if args[0] == "feed":
        fmt = args[args.index("--format") + 1] if "--format" in args else "domains"
        feed(int(args[1]), args[2], fmt)
    elif args[0] == "queries":
        mix = args[args.index("--mix") + 1] if "--mix" in args else "mix"
        pool = int(args[args.index("--allowed-pool") + 1]) if "--allowed-pool" in args else 1000
        queries(args[1], int(args[2]), args[3], mix, pool)
    elif args[0] == "zone":
        zone(int(args[1]), args[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
