#!/usr/bin/env python3
"""diffuse against PyTorch on the course's models: runs bench_models and peer/peer_models.py one after
the other, alternating which goes first, for several rounds, and prints per case the median over the
rounds of diffuse/PyTorch for training and forward speed and for peak memory (PyTorch/diffuse, so
above 1 means diffuse uses less).

  /usr/bin/python3 benchmarks/compare.py [--rounds 3] [--case NAME]... [--min_time 2]
                                         [--bench build/release/benchmarks/bench_models] [--json FILE]

Run it on an otherwise idle machine: only ratios measured in the same run mean anything."""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd):
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in rows if "case" in r}, [r for r in rows if "check" in r]


def ratio(a, b):
    return a / b if a and b else None


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--case", action="append", default=[])
    ap.add_argument("--min_time", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "release", "benchmarks", "bench_models"))
    ap.add_argument("--json", help="also write every round's raw lines here")
    a = ap.parse_args()
    if not os.access(a.bench, os.X_OK):
        sys.exit(f"compare: {a.bench} not found; build it first: cmake --preset release && "
                 "cmake --build --preset release --target bench_models")
    cases = sum((["--case", c] for c in a.case), [])
    ours_cmd = [a.bench, "--min_time", str(a.min_time)] + cases
    peer_cmd = [sys.executable, os.path.join(HERE, "peer", "peer_models.py"), "--min_time", str(a.min_time),
                "--threads", str(a.threads)] + cases
    env_threads = os.environ.get("OMP_NUM_THREADS")
    if env_threads and int(env_threads) != a.threads:
        sys.exit(f"compare: OMP_NUM_THREADS={env_threads} but --threads {a.threads}")
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    rounds = []
    for i in range(a.rounds):
        order = [("diffuse", ours_cmd), ("torch", peer_cmd)]
        if i % 2:
            order.reverse()
        got = {}
        for who, cmd in order:
            print(f"round {i + 1}/{a.rounds}: {who}", file=sys.stderr, flush=True)
            got[who], checks = run(cmd)
            for c in checks:
                print(f"  {json.dumps(c)}", file=sys.stderr)
            for r in got[who].values():
                print(f"  {json.dumps(r)}", file=sys.stderr, flush=True)
        rounds.append(got)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rounds, f, indent=1)

    names = [c for c in rounds[0]["diffuse"] if c in rounds[0]["torch"]]
    print(f"\nmedians over {a.rounds} rounds, {a.threads} threads; ratio = diffuse / PyTorch "
          f"(memory: PyTorch / diffuse)")
    header = (f"{'case':<15} {'train img/s':>20} {'ratio':>6}  {'forward img/s':>20} {'ratio':>6}  "
              f"{'peak MB':>16} {'ratio':>6}  {'GFLOP/s':>8}")
    print(header)
    print("-" * len(header))
    for c in names:
        def med(who, key):
            vals = [r[who][c][key] for r in rounds if r[who][c].get(key) is not None]
            return statistics.median(vals) if vals else None

        def med_ratio(key, inverse=False):
            vals = []
            for r in rounds:
                x, y = r["diffuse"][c].get(key), r["torch"][c].get(key)
                v = ratio(y, x) if inverse else ratio(x, y)
                if v is not None:
                    vals.append(v)
            return statistics.median(vals) if vals else None

        tr = f"{fmt(med('diffuse', 'train_img_per_s'), 1)} / {fmt(med('torch', 'train_img_per_s'), 1)}"
        fw = f"{fmt(med('diffuse', 'forward_img_per_s'), 1)} / {fmt(med('torch', 'forward_img_per_s'), 1)}"
        mem = f"{fmt(med('diffuse', 'peak_rss_mb'), 0)} / {fmt(med('torch', 'peak_rss_mb'), 0)}"
        print(f"{c:<15} {tr:>20} {fmt(med_ratio('train_img_per_s')):>6}  {fw:>20} "
              f"{fmt(med_ratio('forward_img_per_s')):>6}  {mem:>16} {fmt(med_ratio('peak_rss_mb', True)):>6}  "
              f"{fmt(med('diffuse', 'gflops'), 1):>8}")
    gemm = statistics.median(r["diffuse"][names[0]]["gemm_gflops"] for r in rounds) if names else None
    print(f"Eigen 1024x1024 GEMM in the same run: {fmt(gemm, 1)} GFLOP/s")


if __name__ == "__main__":
    main()
