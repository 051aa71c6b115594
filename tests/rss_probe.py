"""Peak memory of one ``load_mammogram`` call in a fresh process: ``python -m tests.rss_probe FILE``.

The process first loads small valid images (so that imports and first-use allocations are in its baseline),
resets its peak resident size (``/proc/self/clear_refs``, Linux), loads FILE, and prints one JSON line:
``{"baseline": bytes, "peak": bytes, "above": bytes, "error": message or null, "type": exception type}``.
Decode processes are separate processes, limited on their own (``RLIMIT_DATA``); they are not counted here.
"""

from __future__ import annotations

import io
import json
import sys


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main(path: str) -> None:
    import tifffile
    from PIL import Image

    from core.imaging import MammogramError, load_mammogram
    from tests.hostile import dataset, pattern, to_bytes

    buffer = io.BytesIO()
    Image.fromarray(pattern(64, 64)).save(buffer, format="PNG")
    load_mammogram(buffer.getvalue())
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pattern(64, 64), compression="zlib")
    load_mammogram(buffer.getvalue())
    load_mammogram(to_bytes(dataset(pattern(64, 64))))
    baseline = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    error = kind = None
    try:
        load_mammogram(path)
    except MammogramError as exc:
        error, kind = str(exc), type(exc).__name__
    except BaseException as exc:  # reported, so that the test names it
        error, kind = str(exc), type(exc).__name__
    peak = _status("VmHWM")
    print(
        json.dumps(
            {"baseline": baseline, "peak": peak, "above": peak - baseline, "error": error, "type": kind}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
