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
    p.add_argument(
        "--compression", choices=("rle", "jpeg2000", "none"), default="rle",
        help="lossless encoding of the pixel data with --out (default rle; the app's cache folder is rle)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args) -> int:
    from core.phantom import ensure_cohort, generate_cohort

    start = time.perf_counter()
    progress = progress_line(sys.stderr, start)
    if args.out:
        manifest = generate_cohort(
            args.preset, args.out, args.seed, workers=args.workers, progress=progress,
            compression=args.compression,
        )  # fmt: skip
    else:
        manifest = ensure_cohort(args.preset, args.seed, progress=progress, workers=args.workers)
    print(f"manifest: {manifest}")
    print(f"findings: {manifest.parent / 'findings.csv'}")
    print(f"time: {time.perf_counter() - start:.1f} s")
    return 0


def progress_line(stream, start: float):
    """A ``progress(done, total)`` callback that writes ``generating: 40/300 exams (13 %), 31 s, about
    3 min left``: rewritten in place on a terminal, else one line per 5 % step."""
    last = [-1]

    def progress(done: int, total: int) -> None:
        elapsed = time.perf_counter() - start
        left = elapsed / done * (total - done)
        pct = 100 * done // total
        text = f"generating: {done}/{total} exams ({pct} %), {elapsed:.0f} s, about {_duration(left)} left"
        if stream.isatty():
            print(f"\r{text}", end="\n" if done == total else "", file=stream, flush=True)
        elif pct // 5 > last[0] or done == total:
            last[0] = pct // 5
            print(text, file=stream, flush=True)

    return progress


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
