#!/usr/bin/env python3
"""Compile time of programs that use diffuse, header-only against precompiled mode.

Compiles each source to an object with this project's release flags (cmake/DiffuseOptions.cmake:
-O3 -march=native, OpenMP, C++20), once as a header-only user does and once with
-DDIFFUSE_PRECOMPILED (what linking diffuse::precompiled adds), alternating the two for several
rounds, and prints per source the median CPU time (user + system) and peak memory of the compiler.
CPU time, not wall time: it is what a build on a shared machine pays, and it varies less.

  python3 benchmarks/compile_time/measure.py [--rounds 3] [--cxx c++] [--opt=-O2] [SOURCE...]

Without sources it measures the probe train_unet.cpp (the program issue 10 measured) and the
examples. Only the objects are built: linking is the same in both modes except for the library."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_SOURCES = ["benchmarks/compile_time/train_unet.cpp", "examples/train_unconditional.cpp",
                   "examples/sample.cpp", "examples/from_scratch.cpp", "examples/toy2d.cpp"]


def compile_once(cxx, opt, source, precompiled, obj):
    cmd = [cxx, "-std=gnu++20", opt, "-march=native", "-DNDEBUG", "-fopenmp", "-Wall", "-Wextra",
           "-Wno-maybe-uninitialized", "-I", os.path.join(ROOT, "include"), "-isystem", "/usr/include/eigen3",
           "-isystem", "/usr/include/stb", "-c", source, "-o", obj]
    if precompiled:
        cmd.insert(1, "-DDIFFUSE_PRECOMPILED")
    # The compiler's messages go to a file: a pipe read only after wait4 would block a compiler
    # that fills it.
    with tempfile.TemporaryFile() as messages:
        proc = subprocess.Popen(cmd, stderr=messages)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            messages.seek(0)
            sys.exit(f"compile failed ({' '.join(cmd)}):\n{messages.read().decode()}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sources", nargs="*", default=DEFAULT_SOURCES)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cxx", default=os.environ.get("CXX", "c++"))
    ap.add_argument("--opt", default="-O3", help="optimisation level (-O3 as the release build; issue 10 measured -O2)")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        obj = os.path.join(tmp, "probe.o")
        for r in range(args.rounds):
            for source in args.sources:
                path = source if os.path.isabs(source) else os.path.join(ROOT, source)
                # Alternate which mode goes first, so a slow spell of the machine hits both.
                for precompiled in ((False, True) if r % 2 == 0 else (True, False)):
                    seconds, mb = compile_once(args.cxx, args.opt, path, precompiled, obj)
                    results.setdefault((source, precompiled), []).append((seconds, mb))
                    print(f"round {r + 1}: {source} {'precompiled' if precompiled else 'header-only'}: "
                          f"{seconds:.1f} s, {mb:.0f} MB", file=sys.stderr, flush=True)
    print(f"{args.cxx} {args.opt}, median of {args.rounds} rounds")
    print(f"| program | header-only CPU s | precompiled CPU s | ratio | header-only MB | precompiled MB |")
    print(f"| --- | ---: | ---: | ---: | ---: | ---: |")
    for source in args.sources:
        h = results[(source, False)]
        p = results[(source, True)]
        hs, ps = statistics.median(s for s, _ in h), statistics.median(s for s, _ in p)
        hm, pm = max(m for _, m in h), max(m for _, m in p)
        print(f"| {source} | {hs:.1f} | {ps:.1f} | {ps / hs:.2f} | {hm:.0f} | {pm:.0f} |")


if __name__ == "__main__":
    main()
