"""How fast the simulated internet answers: N hosters on loopback, URLs of benign pictures spread
over them, fetched through meldpunt's own safe fetcher from a pool of threads (the way the
worker's re-checks fetch). Prints requests a second for pictures made on first request (cold)
and for pictures already made (warm).

    .venv/bin/python bench/sim_http.py --hosters 1000 --urls 20000 --pictures 3000 --threads 8
"""

from __future__ import annotations

import argparse
import ipaddress
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from meldpunt.clock import perf
from meldpunt.reports.fetcher import FetchPolicy, NameTable, fetch
from meldpunt.sim.internet import Internet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosters", type=int, default=1000)
    parser.add_argument("--urls", type=int, default=20000)
    parser.add_argument("--pictures", type=int, default=3000, help="distinct pictures")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        begun = perf()
        net = Internet(Path(folder), hosters=args.hosters, seed=1)
        net.start()
        print(f"{args.hosters} hosters listening after {perf() - begun:.2f} s (port {net.port})")
        try:
            urls = [
                net.add_picture(1 + i % args.hosters, 6 + i % args.pictures)
                for i in range(args.urls)
            ]
            policy = FetchPolicy(
                allow_networks=(ipaddress.ip_network("127.0.0.0/8"),),
                names=NameTable(net.names_path),
            )
            cold = urls[: args.pictures]
            warm = urls[args.pictures :]
            for name, batch in (("cold", cold), ("warm", warm)):
                if not batch:
                    continue
                begun = perf()
                with ThreadPoolExecutor(args.threads) as pool:
                    statuses = Counter(pool.map(lambda u: fetch(u, policy).status, batch))
                took = perf() - begun
                print(f"{name}: {len(batch)} fetches in {took:.1f} s = {len(batch) / took:,.0f}/s"
                      f" {dict(statuses)}")  # fmt: skip
        finally:
            begun = perf()
            net.stop()
            print(f"stopped in {perf() - begun:.2f} s")


if __name__ == "__main__":
    main()
