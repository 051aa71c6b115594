"""Which server-side folders the app may read: the operator's allowed roots.

The app lets a visitor name a file, folder or manifest on the server ("Server path"). Only paths inside the
*allowed roots* are opened, listed or loaded; a manifest's rows must resolve inside them too. Paths are
compared after resolving symbolic links and ``..`` (``os.path.realpath``), so neither a link nor a relative
path leads outside.

Roots
    ``MAMMO_ALLOWED_ROOTS``: folders separated by ``os.pathsep`` (``:`` on Linux and macOS), set by the
    operator. Unset: the real NYU samples folder (when present). The data folder (``MAMMO_ROBUST_DATA``:
    synthetic cohorts, run stores) is always a root: it holds what the app itself writes.

The command line and the Python library read whatever their caller names (the caller is the operator);
:func:`core.manifest.read_manifest` applies roots only when it is given some.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from core.errors import AccessError

ROOTS_ENV = "MAMMO_ALLOWED_ROOTS"


def allowed_roots() -> tuple[Path, ...]:
    """The allowed roots, resolved: the data folder, then ``MAMMO_ALLOWED_ROOTS`` or the NYU samples."""
    from core.paths import data_dir, nyu_samples_dir

    roots = [data_dir()]
    env = os.environ.get(ROOTS_ENV, "")
    if env.strip():
        roots += [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    elif nyu_samples_dir().is_dir():
        roots.append(nyu_samples_dir())
    out: list[Path] = []
    for root in roots:
        resolved = Path(os.path.realpath(root))
        if resolved not in out:
            out.append(resolved)
    return tuple(out)


def is_allowed(path: str | os.PathLike, roots: Iterable[str | os.PathLike] | None = None) -> bool:
    """True when ``path``, resolved, lies inside one of ``roots`` (default :func:`allowed_roots`)."""
    resolved = Path(os.path.realpath(os.path.expanduser(os.fspath(path))))
    bases = allowed_roots() if roots is None else [Path(os.path.realpath(r)) for r in roots]
    return any(resolved == base or resolved.is_relative_to(base) for base in bases)


def check_allowed(path: str | os.PathLike, roots: Iterable[str | os.PathLike] | None = None) -> Path:
    """Return ``path`` resolved if it lies inside the allowed roots, else raise :class:`AccessError`.

    The message does not say whether the path exists, so refused paths reveal nothing about the server.
    """
    if not is_allowed(path, roots):
        raise AccessError(
            f"{path}: outside the folders this app may read; the operator sets them with {ROOTS_ENV}"
        )
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))
