"""Private by default: the app binds loopback; server paths and manifest rows stay inside allowed roots."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from core.access import AccessError, allowed_roots, check_allowed, is_allowed
from core.manifest import COLUMNS, read_manifest
from tests.app_support import errors, open_page, run, tiny_cohort_env
from tests.hostile import dataset, pattern, to_bytes

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory):
    yield from tiny_cohort_env(tmp_path_factory.mktemp("access-data"))


def test_default_config_binds_loopback():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["maxUploadSize"] <= 256  # the loader's byte budget (MiB)


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def _non_loopback_ipv4() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads the listening sockets from /proc")
def test_streamlit_run_with_the_default_config_listens_on_loopback_only(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MAMMO_ROBUST_DATA": str(tmp_path),
        "MAMMO_EXPLORER_COHORT": "tiny",
    }
    proc = subprocess.Popen(  # the README's start command, from the repository (where its config lives)
        [sys.executable, "-m", "streamlit", "run", "explorer/app.py", "--server.port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not _listening(port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
        addresses = _listening(port)
        assert addresses, "streamlit did not start listening"
        assert set(addresses) == {"0100007F"}, addresses  # 127.0.0.1 only: no 0.0.0.0, no ::
        other = _non_loopback_ipv4()
        if other:
            with pytest.raises(OSError), socket.create_connection((other, port), timeout=5):
                pass
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_roots_resolve_links_and_dot_dots(tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (outside / "secret.dcm").write_bytes(b"x")
    (root / "ok.dcm").write_bytes(b"x")
    (root / "link.dcm").symlink_to(outside / "secret.dcm")
    roots = [root]
    assert is_allowed(root / "ok.dcm", roots) and is_allowed(root, roots)
    assert not is_allowed(root / ".." / "outside" / "secret.dcm", roots)
    assert not is_allowed(root / "link.dcm", roots)
    assert not is_allowed(str(root) + "-sibling", roots)
    with pytest.raises(AccessError, match="outside the folders this app may read"):
        check_allowed(outside / "missing.dcm", roots)
    monkeypatch.setenv("MAMMO_ROBUST_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MAMMO_ALLOWED_ROOTS", f"{root}{os.pathsep}{outside}")
    assert allowed_roots() == ((tmp_path / "data").resolve(), root.resolve(), outside.resolve())


def _manifest(folder: Path, paths: list[str], name: str = "manifest.csv") -> Path:
    rows = []
    for i, path in enumerate(paths):
        rows.append(dict.fromkeys(COLUMNS, ""))
        rows[-1].update(image_id=f"img{i}", exam_id="e1", patient_id="p1", laterality="LR"[i % 2], view="CC")
        rows[-1].update(path=path, label_benign=0, label_malignant=0, split="test")
    out = folder / name
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(out, index=False)
    return out


def test_a_manifest_cannot_reach_outside_the_roots(tmp_path):
    root, outside = tmp_path / "root" / "cohort", tmp_path / "outside"
    root.mkdir(parents=True), outside.mkdir()
    (root / "a.dcm").write_bytes(b"x")
    (outside / "b.dcm").write_bytes(b"x")
    path = _manifest(root, ["a.dcm", "../../outside/b.dcm", str(outside / "b.dcm")])
    assert len(read_manifest(path)) == 3  # the library and CLI read what their caller names
    df = read_manifest(path, roots=[tmp_path / "root"])
    assert df["image_id"].tolist() == ["img0"]
    messages = [str(p) for p in df.attrs["problems"]]
    assert sum("lies outside the allowed folders (row dropped)" in m for m in messages) == 2
    assert any("'../../outside/b.dcm'" in m for m in messages)


def test_server_path_outside_the_roots_is_refused(tiny_cohort, tmp_path):
    outside = tmp_path / "elsewhere.dcm"
    outside.write_bytes(to_bytes(dataset(pattern(64, 64))))
    at = run(open_page("Image lab", {"src_kind": "Server path", "src_path": str(outside)}))
    assert any("outside the folders this app may read" in e.value for e in at.sidebar.error)
    assert at.session_state["image_ref"] is None
    for probe in ("/etc", "/etc/passwd", str(tiny_cohort.parent / ".." / ".." / "..")):
        at = run(open_page("Image lab", {"src_kind": "Server path", "src_path": probe}))
        assert any("outside the folders this app may read" in e.value for e in at.sidebar.error), probe


def test_server_file_inside_the_roots_is_shown_by_pseudonym(tiny_cohort):
    inside = tiny_cohort.parent / "DOE_JANE_R_CC.dcm"
    inside.write_bytes(to_bytes(dataset(pattern(64, 64), ImagerPixelSpacing=[0.1, 0.1])))
    at = run(open_page("Image lab", {"src_kind": "Server path", "src_path": str(inside)}))
    assert not errors(at)
    caption = " ".join(c.value for c in at.caption)
    assert "**img-" in caption and "DOE" not in caption and "server file" in caption
    assert at.session_state["image_ref"].name.startswith("img-")


def test_server_manifest_rows_outside_the_roots_are_refused(tiny_cohort, tmp_path):
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(to_bytes(dataset(pattern(64, 64))))
    folder = tiny_cohort.parent
    first = read_manifest(tiny_cohort).iloc[0]["path"]
    escape = os.path.relpath(outside, folder)
    path = _manifest(folder, [first, escape], name="mixed.csv")
    at = run(open_page("Image lab", {"src_kind": "Server path", "src_path": str(path)}))
    warnings = " ".join(w.value for w in at.sidebar.warning)
    assert "1 row(s) of this manifest refused" in warnings and "lies outside the allowed folders" in warnings
    assert at.sidebar.selectbox(key="src_image_id").options == ["img0  ·  exam e1 L-CC  ·  normal"]


def test_loopback_addresses_and_token_comparison():
    from core.access import is_loopback, token_matches

    for address in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(address), address
    for address in (None, "", "0.0.0.0", "::", "192.168.1.4", "example.org", "10.0.0.1"):
        assert not is_loopback(address), address
    assert token_matches("s3cret", "s3cret")
    assert not token_matches("s3cre", "s3cret") and not token_matches("", "s3cret")
    assert not token_matches("", "") and not token_matches(None, None)  # no token configured: nothing matches
    assert not token_matches("é", "e")
