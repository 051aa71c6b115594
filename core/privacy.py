"""Keeping identifiers out: the installation's pseudonym salt, pseudonymous ids, and a quiet pydicom.

**Salt.** Pseudonyms are HMAC-SHA256 digests keyed by a secret of 32 random bytes created once per
installation in the data folder (``data_dir()/pseudonym-salt``, mode 0600). Without the secret a short id
(a numeric patient id, a StudyInstanceUID) cannot be recovered by hashing every candidate, and two
installations give unrelated pseudonyms. Delete the file to start a new series of pseudonyms (ids written
before will no longer match).

**Pseudonyms.** :func:`pseudonym` (any text), :func:`file_pseudonym` (an image file on the server: its
resolved path), :func:`bytes_pseudonym` (an upload: its content digest), :func:`study_key` (a study UID). The
app shows and exports these instead of file names, which may carry patient names; the command line's
``predict`` writes them as ``image_id`` for plain files.

**pydicom.** :func:`quiet_pydicom` (called by every reader of DICOM headers) stops pydicom from validating
values while reading (its warnings quote them, e.g. an invalid StudyInstanceUID), routes its logger to
nowhere, and ignores warnings raised from pydicom's modules, so that no header value reaches standard error
or a log from the app, the command line or a run worker. :func:`quiet_tifffile` does the same for tifffile's
logger (its messages may quote tag values such as ImageDescription).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import warnings
from pathlib import Path

SALT_FILE = "pseudonym-salt"
_SALT: dict[str, bytes] = {}
_LOCK = threading.Lock()
_QUIET = False
_PYDICOM_MODULES = r"pydicom(\.|$)"


def installation_salt() -> bytes:
    """The installation's secret salt (32 bytes), created in the data folder on first use (mode 0600).

    When the data folder cannot be written, a salt for this process only is used (pseudonyms then change
    between runs), rather than a public default.
    """
    from core.paths import data_dir

    try:
        path = data_dir() / SALT_FILE
    except OSError:
        path = None
    key = str(path)
    with _LOCK:
        if key in _SALT:
            return _SALT[key]
        salt = _read_or_create(path) if path is not None else None
        _SALT[key] = salt or secrets.token_bytes(32)
        return _SALT[key]


def _read_or_create(path: Path) -> bytes | None:
    for _ in range(2):
        try:
            data = path.read_bytes()
            if len(data) >= 16:
                return data
        except FileNotFoundError:
            pass
        except OSError:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: read theirs
            continue
        except OSError:
            return None
        salt = secrets.token_bytes(32)
        try:
            os.write(fd, salt)
        finally:
            os.close(fd)
        return salt
    return None


def pseudonym(value: object, *, prefix: str = "", length: int = 12, salt: str | None = None) -> str:
    """``prefix`` + the first ``length`` hex digits of a keyed hash of ``value``.

    Without ``salt``: HMAC-SHA256 keyed by the installation salt. With ``salt`` (a site secret shared by
    installations that must agree on ids, e.g. ``mammo-robust manifest dicom-folder --salt``): SHA-256 of
    the salt and the value, as before issue 15.
    """
    if salt is not None:
        keyed = f"{salt}\x1f{value}".encode()
        return f"{prefix}{hashlib.sha256(keyed).hexdigest()[:length]}"
    digest = hmac.new(installation_salt(), str(value).encode("utf-8", "surrogatepass"), hashlib.sha256)
    return f"{prefix}{digest.hexdigest()[:length]}"


def file_pseudonym(path: str | os.PathLike) -> str:
    """A pseudonymous id for an image file (``img-`` + 10 hex digits of its resolved path's HMAC)."""
    return pseudonym(f"file\x1f{os.path.realpath(path)}", prefix="img-", length=10)


def bytes_pseudonym(digest: str) -> str:
    """A pseudonymous id for uploaded bytes, from their content digest (``upload-`` + 10 hex digits)."""
    return pseudonym(f"bytes\x1f{digest}", prefix="upload-", length=10)


def study_key(study_uid: str) -> str:
    """A pseudonym of a StudyInstanceUID: groups images of one study without revealing it (16 hex digits)."""
    return pseudonym(f"study\x1f{study_uid.strip()}", length=16)


def quiet_pydicom() -> None:
    """Configure pydicom so that it never prints or logs header values (cheap; call before each read).

    The warnings filter is checked on every call because ``warnings.catch_warnings`` blocks elsewhere (in
    other threads, in test runners) restore the filter list they saved.
    """
    global _QUIET
    import pydicom.config

    if pydicom.config.settings.reading_validation_mode != pydicom.config.IGNORE:
        pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    if not _QUIET:
        with _LOCK:
            if not _QUIET:
                logger = logging.getLogger("pydicom")
                logger.addHandler(logging.NullHandler())
                logger.propagate = False
                _QUIET = True
    if not any(
        f[0] == "ignore" and f[3] is not None and f[3].pattern == _PYDICOM_MODULES for f in warnings.filters
    ):
        warnings.filterwarnings("ignore", module=_PYDICOM_MODULES)


def quiet_tifffile() -> None:
    """Route tifffile's logger to nowhere (idempotent): corrupt TIFFs are reported by the loader's message."""
    logger = logging.getLogger("tifffile")
    if logger.propagate:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
