"""``mammo-robust phantom``: generate a synthetic screening cohort (DICOM files, manifest, findings)."""

from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "phantom",
        help="generate the built-in synthetic screening cohort as DICOM files with a manifest",
        description="Generate four-view synthetic screening exams (DICOM, For Presentation, 12-bit) with a "
        "manifest.csv and the ground truth of every finding in findings.csv. Without --out it goes to "
        "the cache folder used by the app (generated once per preset and seed).",
    )
    p.add_argument("--preset", default="demo", help="cohort preset: tiny (tests, seconds) or demo (default)")
    p.add_argument("--out", help="output folder (must be empty or absent); default: the app's cache folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files); default 0")
    p.add_argument("--workers", type=int, help="worker processes (default: the preset's)")
    p.set_defaults(func=run)


def run(args) -> int:
    from core.phantom import ensure_cohort, generate_cohort

    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty() or done == total or done % 20 == 0:
            print(f"\r{done}/{total} exams", end="" if done < total else "\n", file=sys.stderr, flush=True)

    if args.out:
        manifest = generate_cohort(args.preset, args.out, args.seed, workers=args.workers, progress=progress)
    else:
        manifest = ensure_cohort(args.preset, args.seed, progress=progress, workers=args.workers)
    print(f"manifest: {manifest}")
    print(f"findings: {manifest.parent / 'findings.csv'}")
    print(f"time: {time.perf_counter() - start:.1f} s")
    return 0
