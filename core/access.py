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

Runs token
    Starting, cancelling, resuming and deleting runs and importing score tables cost the server's time and
    disk; an app served beyond this machine asks for a token before it allows them. The operator sets it
    in ``MAMMO_RUNS_TOKEN`` (or ``runs_token`` in Streamlit's secrets); :func:`token_matches` compares in
    constant time, :func:`is_loopback` tells a server reachable from this machine only. The app's side
    (where the token is entered) is ``explorer.ui.guard``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from core.errors import AccessError

ROOTS_ENV = "MAMMO_ALLOWED_ROOTS"
RUNS_TOKEN_ENV = "MAMMO_RUNS_TOKEN"


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


def is_loopback(address: str | None) -> bool:
    """True when a server bound to ``address`` can be reached from this machine only (``127.0.0.1``,
    ``::1``, ``localhost``...). ``None`` or ``""`` (Streamlit's default: every interface), ``0.0.0.0``, a
    host name or any other address are not."""
    if not address:
        return False
    text = address.strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def token_matches(given: str | None, expected: str | None) -> bool:
    """Whether ``given`` equals the configured token, compared in constant time (``hmac.compare_digest``);
    an empty or missing token matches nothing."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
