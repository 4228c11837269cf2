"""Fuzz every file format: >= 10,000 seeded mutations each through its public loader (`make fuzz`).

Each case runs in a forked worker with a per-case timeout and a memory cap (tests/fuzz/runner.py);
prints the count of each outcome per format and exits 1 if any case was untyped, hung or crashed.
Failing inputs are kept in --keep (default fuzz-failures/) as FORMAT-CASE-OUTCOME.SUFFIX, to be fed
to the loader (or `kws run`) by hand.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fuzz.formats import all_formats  # noqa: E402
from tests.fuzz.runner import campaign  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    formats = all_formats()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=10_000, help="mutations per format (default: %(default)s)")
    p.add_argument("--formats", nargs="+", choices=sorted(formats), default=sorted(formats),
                   help="formats to fuzz (default: all)")
    p.add_argument("--seed", type=int, default=1, help="campaign seed (make test uses 0; default: %(default)s)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per case (default: %(default)s)")
    p.add_argument("--mem-mib", type=int, default=2048,
                   help="address space a case may add, MiB (default: %(default)s)")
    p.add_argument("--keep", type=Path, default=REPO / "fuzz-failures", help="folder for failing inputs")
    args = p.parse_args(argv)
    failed = 0
    for name in args.formats:
        t0 = time.monotonic()

        def progress(i, report, name=name, t0=t0):
            if i >= 0 and (i + 1) % 1000 == 0:
                print(f"  {report.summary()} ({time.monotonic() - t0:.0f} s)", flush=True)

        report = campaign(formats[name], args.cases, args.seed, timeout_s=args.timeout,
                          mem_bytes=args.mem_mib << 20, keep_dir=args.keep, progress=progress)
        print(f"{report.summary()} in {time.monotonic() - t0:.0f} s", flush=True)
        for i, kind, detail, kept in report.failures[:10]:
            last = detail.strip().splitlines()[-1] if detail.strip() else ""
            print(f"  case {i} {kind}: {last} -> {kept}")
        failed += report.failed
    print("fuzz: no failures" if not failed else f"fuzz: {failed} failing cases (inputs in {args.keep})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
