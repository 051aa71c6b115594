"""No file can crash or exhaust the process reading it: hostile corpus, decoder aborts, bombs, special files.

The corpus (``tests/hostile.py``) is generated at test time from recipes: seeded mutations of small valid
RLE, JPEG 2000, JPEG-lossless and JPEG-LS DICOMs, and of PNG, TIFF and JPEG files. Every case must end in a
``Mammogram`` or a ``MammogramError`` -- never another exception, a ``BaseException`` (a Rust panic), or the
death of this test process (a gdcm abort) -- with this process's memory bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.imaging import Mammogram, MammogramError, load_mammogram, sandbox
from core.imaging.limits import DECODE_MEMORY_BYTES
from tests import bombs, hostile

REPO = Path(__file__).resolve().parent.parent
PER_SEED = 180  # 4 syntaxes x 3 sizes x 180 = 2160 DICOM cases
PER_RASTER = 40  # PNG, JPEG, TIFF, deflate TIFF: 160 cases
# Recipes found by fuzzing decoders in a child process (see tests/hostile.py): each kills or panics the
# decoder when it runs in-process (the loader before issue 15 died or leaked a BaseException on them).
GDCM_ABORT = ("jll", (128, 96), "interior", 2252)  # gdcm: "terminate called after throwing gdcm::Exception"
RLE_PANIC = ("rle", (128, 96), "frame", 0)  # pylibjpeg-rle: "index out of bounds" -> PanicException


def _status(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _recipe(kind, shape, family, seed) -> bytes:
    return hostile.mutate(hostile.encode(kind, hostile.pattern(*shape)), family, seed)


def _outcome(data: bytes, name: str) -> str:
    """ "ok", "error" (MammogramError) or "ESCAPED <type>: <message>" for anything else."""
    try:
        result = load_mammogram(data, name=name)
    except MammogramError:
        return "error"
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - what the test looks for
        return f"ESCAPED {type(exc).__name__}: {exc}"
    return "ok" if isinstance(result, Mammogram) else f"ESCAPED returned {type(result).__name__}"


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to measure memory")
def test_hostile_corpus_only_raises_mammogram_error():
    seeds = hostile.seed_files()
    cases = [*hostile.dicom_cases(PER_SEED, seeds), *hostile.raster_cases(PER_RASTER)]
    cases.append(("gdcm-abort", _recipe(*GDCM_ABORT)))
    cases.append(("rle-panic", _recipe(*RLE_PANIC)))
    assert len(cases) >= 2000
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset this process's peak resident size
    before = _status("self", "VmRSS")
    outcomes = {name: _outcome(data, name) for name, data in cases}
    grown = _status("self", "VmHWM") - before
    escaped = {name: o for name, o in outcomes.items() if o.startswith("ESCAPED")}
    assert not escaped, f"{len(escaped)} cases escaped: {list(escaped.items())[:5]}"
    counts = {o: sum(v == o for v in outcomes.values()) for o in ("ok", "error")}
    print(
        f"hostile corpus: {len(cases)} cases, {counts}, decode processes replaced: {sandbox.pool().restarts}"
    )
    assert counts["ok"] > 100 and counts["error"] > 1000  # the corpus reaches the decoders and breaks them
    assert grown < 400 * 1024**2, f"the test process grew by {grown / 1024**2:.0f} MB"
    for worker in list(sandbox.pool()._idle):  # decode processes stay within their limit
        assert _status(worker.proc.pid, "VmHWM") < 2 * DECODE_MEMORY_BYTES


def _dies_in_process(data: bytes) -> int:
    """Exit status of decoding ``data`` with pydicom in a child process, in-process as before issue 15."""
    code = "import io, sys, pydicom; pydicom.dcmread(io.BytesIO(sys.stdin.buffer.read())).pixel_array"
    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=120)
    return proc.returncode


def test_a_gdcm_abort_is_contained_and_the_pool_recovers():
    data = _recipe(*GDCM_ABORT)
    aborts = _dies_in_process(data) == -signal.SIGABRT
    restarts = sandbox.pool().restarts
    with pytest.raises(MammogramError, match="abort.jll") as info:
        load_mammogram(data, name="abort.jll")
    if aborts:  # the installed gdcm really aborts on it: the decode process died, this one did not
        assert "decoder stopped (SIGABRT)" in str(info.value)
        assert sandbox.pool().restarts == restarts + 1
    good = hostile.encode("jll", hostile.pattern(64, 64))
    np.testing.assert_array_equal(load_mammogram(good).pixels, hostile.pattern(64, 64))


def test_a_rust_panic_becomes_a_mammogram_error():
    """RLE is decoded in this process (core.imaging.rle_codec): the panic is caught, the process goes on."""
    data = _recipe(*RLE_PANIC)
    with pytest.raises(MammogramError, match=r"panic\.rle: could not decode the RLE Lossless") as info:
        load_mammogram(data, name="panic.rle")
    assert "PanicException" in str(info.value)


def test_a_spinning_decoder_is_stopped_at_its_time_limit(monkeypatch):
    """CharLS spins for seconds on some truncated streams; the decode process is killed at the limit."""
    import pydicom
    from pydicom.encaps import encapsulate, generate_frames

    data = hostile.encode("jls", hostile.pattern(128, 96))
    ds = pydicom.dcmread(__import__("io").BytesIO(data))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    request = {
        "kind": "dicom", "ts": str(ds.file_meta.TransferSyntaxUID), "rows": 128, "cols": 96,
        "bits_allocated": 16, "bits_stored": 12, "high_bit": 11, "pixel_representation": 0,
        "photometric": "MONOCHROME2", "plugins": ["pyjpegls"],
    }  # fmt: skip
    monkeypatch.setenv("MAMMO_DECODE_TIMEOUT_S", "0.3")
    truncated = encapsulate([frame[:480]])  # no end marker: the loader itself refuses it before decoding
    restarts = sandbox.pool().restarts
    try:
        out = sandbox.decode(request, truncated, (128, 96), label="spin.dcm", what="JPEG-LS pixel data")
    except MammogramError as exc:
        assert str(exc).startswith("spin.dcm: ")
        if "took longer than 0.3 s" in str(exc):
            assert sandbox.pool().restarts == restarts + 1
    else:  # a CharLS that no longer spins on it decodes garbage of the right shape
        assert out.shape == (128, 96)


def test_decode_processes_have_memory_and_core_limits():
    pool = sandbox.pool()
    load_mammogram(hostile.encode("jls", hostile.pattern(64, 64)))
    worker = pool._idle[-1]
    limits = Path(f"/proc/{worker.proc.pid}/limits").read_text()
    data_line = next(line for line in limits.splitlines() if line.startswith("Max data size"))
    soft = int(data_line.split()[3])
    assert soft <= _status(worker.proc.pid, "VmData") + DECODE_MEMORY_BYTES + 64 * 1024**2
    core_line = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core_line.split()[4] == "0"


@pytest.mark.parametrize("name", sorted(bombs.BOMBS))
def test_bombs_are_refused_cheaply(tmp_path, name):
    """Each bomb is refused with a MammogramError, costing < 500 MB above a fresh process's baseline."""
    make, what = bombs.BOMBS[name]
    path = tmp_path / name
    path.write_bytes(make())
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.rss_probe", str(path)], capture_output=True, text=True, timeout=300,
        cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    size, above = path.stat().st_size, result["above"] / 1024**2
    print(f"{name} ({what}, {size} bytes): +{above:.1f} MB; {result['error']}")
    assert result["type"] == "MammogramError", result
    assert str(path) in result["error"]
    assert result["above"] < 500 * 1024**2


def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "fifo.dcm"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.dcm"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    link = tmp_path / "zero.dcm"
    link.symlink_to("/dev/zero")
    try:
        cases = [
            ("/dev/zero", "a device"),
            (link, "a device"),
            (fifo, "a pipe"),
            (sock_path, "a socket"),
            (tmp_path, "folder"),
        ]
        for source, problem in cases:
            with pytest.raises(MammogramError, match=problem) as info:
                load_mammogram(source)
            assert str(source) in str(info.value)
    finally:
        server.close()


def test_a_pipe_swapped_in_after_the_check_neither_hangs_nor_is_read(tmp_path, monkeypatch):
    """The file is opened non-blocking and checked again: a FIFO that replaced the file is refused."""
    from core.imaging import load as load_module

    fifo = tmp_path / "swapped.dcm"
    os.mkfifo(fifo)
    regular = os.stat(__file__)
    real_stat = os.stat
    monkeypatch.setattr(
        load_module.os, "stat", lambda p, *a, **k: regular if str(p) == str(fifo) else real_stat(p, *a, **k)
    )
    with pytest.raises(MammogramError, match="a pipe"):
        load_mammogram(fifo)


def test_a_forked_child_gets_its_own_decode_pool():
    """A process forked after decoding (a data-loader worker) must not share its parent's decode pipes."""
    data = hostile.encode("jls", hostile.pattern(64, 64))
    load_mammogram(data)
    parent_pool = sandbox.pool()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: decode, and report whether it used a pool of its own
        try:
            ok = np.array_equal(load_mammogram(data).pixels, hostile.pattern(64, 64))
            os.write(write, b"1" if ok and sandbox.pool() is not parent_pool else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"
    np.testing.assert_array_equal(load_mammogram(data).pixels, hostile.pattern(64, 64))


def test_a_decode_process_that_cannot_start_gives_a_message(monkeypatch, tmp_path):
    broken = tmp_path / "decode_child.py"
    broken.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setattr(sandbox, "CHILD_SCRIPT", broken)
    private = sandbox.DecodePool(size=1)
    monkeypatch.setattr(sandbox, "_POOL", private)
    with pytest.raises(MammogramError, match="start.dcm: could not decode .* did not start"):
        load_mammogram(hostile.encode("jls", hostile.pattern(64, 64)), name="start.dcm")
