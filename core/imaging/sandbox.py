"""Decoding compressed pixel data in separate, limited processes, so that no file can crash the caller.

Some decoders cannot be made safe in-process: python-gdcm aborts the whole process (a C++ exception nobody
catches) on some corrupt JPEG 2000 and JPEG-lossless streams, and a corrupt stream can make a decoder
allocate without bound or spin. So compressed DICOM pixel data (JPEG, JPEG-LS, JPEG 2000; RLE only where
:mod:`core.imaging.rle_codec`, which decodes it in-process, cannot) and compressed TIFF strips are decoded
here, in a small pool of persistent decode processes (:mod:`core.imaging.decode_child`), each:

- started with ``subprocess`` (fork + exec of a fresh interpreter: safe in a process that has run torch
  or threads, unlike ``multiprocessing``'s fork), importing only numpy, pydicom, its decoder plugins and
  tifffile;
- limited to ``DECODE_MEMORY_BYTES`` (1 GiB) above its start-up size (``RLIMIT_DATA``), with core dumps off;
- given a wall-time limit per call (:func:`~core.imaging.limits.decode_timeout_s`), after which it is killed;
- replaced when it dies or is killed; the next request starts a new one (about 1 s).

The compressed bytes go to the process through a pipe, the decoded array comes back through a pipe into an
array the parent allocated from the expected shape (no pickle crosses from the decode process to the
caller). Any failure -- an error reply, a panic, a death by signal, a timeout, a reply of the wrong shape --
becomes a :class:`~core.imaging.mammogram.MammogramError` naming the file.

``MAMMO_DECODE_PROCESSES`` sets the pool size (default 2: an app serving two sessions, or a run's worker with
a prefetching thread, decode in parallel without waiting).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from core.imaging.limits import DECODE_MEMORY_BYTES, decode_timeout_s
from core.imaging.mammogram import MammogramError

CHILD_SCRIPT = Path(__file__).with_name("decode_child.py")
POOL_SIZE_ENV = "MAMMO_DECODE_PROCESSES"
START_TIMEOUT_S = 120.0
_U32 = struct.Struct(">I")
_ALLOWED_DTYPES = {"|u1", "|i1", "<u2", "<i2", ">u2", ">i2", "<u4", "<i4", "<f4"}
_F_SETPIPE_SZ = 1031


class _DecodeFailed(Exception):
    """A decode process replied with an error, died, or overran its time (``kind`` says which)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[key] = "1"
    # An idle decode process would hand its heap back to the system after every image and fault the same
    # pages in again for the next one (about a third of an RLE decode's time); keep up to 128 MiB, and serve
    # buffers of up to 32 MiB (a 16-bit image of 16 MP) from the heap rather than from fresh mappings.
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(128 * 1024**2))
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(32 * 1024**2))
    return env


class _Worker:
    """One decode process and the two pipe ends that talk to it."""

    def __init__(self, memory_bytes: int):
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(CHILD_SCRIPT), str(int(memory_bytes))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_child_env(),
            close_fds=True,
        )
        self.last_decode_s = 0.0
        """Seconds the last decode took inside the decode process (the rest of a call is overhead)."""
        self.fd_in = self.proc.stdin.fileno()
        self.fd_out = self.proc.stdout.fileno()
        for fd in (self.fd_in, self.fd_out):
            try:  # bigger pipes: fewer round trips for a 17 MB array (not every kernel allows it)
                import fcntl

                fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)
            except (OSError, ImportError):
                pass
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            hello = self._read_header(deadline)
        except _DecodeFailed as exc:
            self.kill()
            raise _DecodeFailed(
                "start", f"the decode process did not start ({exc.kind} {exc.detail})"
            ) from None
        if not hello.get("ready"):
            self.kill()
            raise _DecodeFailed("start", "the decode process did not start")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # the process exits when its input ends
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def _died(self) -> _DecodeFailed:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return _DecodeFailed("crash", name)
        return _DecodeFailed("crash", f"exit status {code}")

    def _wait(self, fd: int, deadline: float, write: bool = False) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _DecodeFailed("timeout", "")
        poller = select.poll()  # poll, not select: descriptors above 1024 are common in a busy server
        poller.register(fd, select.POLLOUT if write else select.POLLIN)
        if not poller.poll(remaining * 1000):
            raise _DecodeFailed("timeout", "")

    def _write_all(self, data, deadline: float) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            self._wait(self.fd_in, deadline, write=True)
            try:
                k = os.write(self.fd_in, view[: 1 << 20])
            except (BrokenPipeError, ConnectionResetError):
                raise self._died() from None
            view = view[k:]

    def _read_into(self, view: memoryview, deadline: float) -> None:
        got = 0
        while got < len(view):
            self._wait(self.fd_out, deadline)
            k = os.readv(self.fd_out, [view[got:]])
            if k == 0:
                raise self._died()
            got += k

    def _read_header(self, deadline: float) -> dict:
        head = bytearray(4)
        self._read_into(memoryview(head), deadline)
        size = _U32.unpack(head)[0]
        if size > 1 << 16:
            raise _DecodeFailed("protocol", f"reply header of {size} bytes")
        raw = bytearray(size)
        self._read_into(memoryview(raw), deadline)
        try:
            header = json.loads(bytes(raw))
        except ValueError as exc:
            raise _DecodeFailed("protocol", "unreadable reply") from exc
        if not isinstance(header, dict):
            raise _DecodeFailed("protocol", "unreadable reply")
        return header

    def decode(self, request: dict, payload, shape: tuple[int, int], timeout_s: float) -> np.ndarray:
        deadline = time.monotonic() + timeout_s
        raw = json.dumps(request).encode()
        payload = memoryview(payload).cast("B")
        self._write_all(_U32.pack(len(raw)) + raw + _U32.pack(len(payload)), deadline)
        self._write_all(payload, deadline)
        header = self._read_header(deadline)
        if not header.get("ok"):
            raise _DecodeFailed(str(header.get("kind", "error")), str(header.get("error", "")))
        dtype, got_shape = header.get("dtype"), tuple(header.get("shape") or ())
        if dtype not in _ALLOWED_DTYPES or got_shape != tuple(shape):
            raise _DecodeFailed("shape", f"decoded {got_shape} {dtype}, expected {tuple(shape)}")
        out = np.empty(shape, dtype=np.dtype(dtype))
        self._read_into(memoryview(out.reshape(-1).view(np.uint8)), deadline)
        self.last_decode_s = float(header.get("seconds", 0.0) or 0.0)
        return out


class DecodePool:
    """A bounded pool of decode processes shared by the threads of one process.

    Parameters
    ----------
    size : int
        Most decode processes alive at once (default ``MAMMO_DECODE_PROCESSES`` or 2).
    memory_bytes : int
        Memory each process may allocate above its start-up size (default ``DECODE_MEMORY_BYTES``).
    """

    def __init__(self, size: int | None = None, memory_bytes: int = DECODE_MEMORY_BYTES):
        if size is None:
            try:
                size = int(os.environ.get(POOL_SIZE_ENV, "2"))
            except ValueError:
                size = 2
        self.size = max(1, int(size))
        self.memory_bytes = int(memory_bytes)
        self._idle: list[_Worker] = []
        self._count = 0
        self._cond = threading.Condition()
        self.restarts = 0
        """Decode processes replaced after a crash, panic or timeout (for tests and benchmarks)."""

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive:
                        return worker
                    worker.kill()
                    self._count -= 1
                if self._count < self.size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return _Worker(self.memory_bytes)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker, keep: bool) -> None:
        if not keep:
            worker.kill()
        with self._cond:
            if keep and worker.alive:
                self._idle.append(worker)
            else:
                self._count -= 1
                self.restarts += 1
            self._cond.notify()

    def decode(self, request: dict, payload, shape: tuple[int, int], timeout_s: float) -> np.ndarray:
        """Decode one image; raises ``_DecodeFailed`` (turned into MammogramError by :func:`decode`)."""
        try:
            worker = self._acquire()
        except _DecodeFailed:
            raise
        except OSError as exc:
            raise _DecodeFailed("start", f"the decode process could not start ({exc})") from exc
        keep = False
        try:
            out = worker.decode(request, payload, shape, timeout_s)
            keep = True
            return out
        except _DecodeFailed as exc:
            # An error reply leaves the process sound: the decoders are pure functions of their input, and a
            # Rust panic unwinds cleanly. A death, a timeout or a garbled reply do not.
            keep = exc.kind in ("error", "memory", "panic") and worker.alive
            raise
        finally:
            self._release(worker, keep)

    def close(self) -> None:
        """End every idle decode process (busy ones end when their call returns)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.close()


_POOL: DecodePool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> DecodePool:
    """The process-wide decode pool (created on first use; its processes start on first decode)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = DecodePool()
            atexit.register(_POOL.close)
        return _POOL


def _forget_pool_after_fork() -> None:
    """A forked child (e.g. a data-loader worker) must not talk to its parent's decode processes through the
    pipes it inherited: it starts a pool of its own on first use."""
    global _POOL, _POOL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def decode(request: dict, payload, shape: tuple[int, int], *, label: str, what: str) -> np.ndarray:
    """Decode compressed pixel data in a decode process; every failure is a ``MammogramError``.

    Parameters
    ----------
    request : dict
        JSON-able description for :mod:`core.imaging.decode_child` (``kind`` "dicom" with the transfer
        syntax and the image pixel attributes, or "tiff").
    payload : bytes-like
        The compressed data (the DICOM pixel data element, or the TIFF file).
    shape : (int, int)
        (rows, cols) the header declares; a decoded array of another shape is refused.
    label : str
        The file, for messages.
    what : str
        What is decoded, for messages (e.g. ``"JPEG 2000 Image Compression pixel data"``).
    """
    timeout = decode_timeout_s(int(shape[0]) * int(shape[1]))
    try:
        return pool().decode(request, payload, shape, timeout)
    except _DecodeFailed as exc:
        raise MammogramError(_message(exc, label, what, timeout)) from None


def _message(exc: _DecodeFailed, label: str, what: str, timeout: float) -> str:
    if exc.kind == "timeout":
        return (
            f"{label}: decoding the {what} took longer than {timeout:.3g} s and was stopped (corrupt data, "
            "or a machine too busy; MAMMO_DECODE_TIMEOUT_S raises the limit)"
        )
    if exc.kind == "memory":
        return (
            f"{label}: decoding the {what} needed more than {DECODE_MEMORY_BYTES // 1024**2} MiB and was "
            "stopped (corrupt data, or an image larger than its header says)"
        )
    if exc.kind == "crash":
        return (
            f"{label}: the decoder stopped ({exc.detail}) on the {what}: the data is corrupt or uses a "
            "feature the decoder cannot handle (it ran in a separate process; nothing else was affected)"
        )
    if exc.kind == "panic":
        return (
            f"{label}: could not decode the {what} (truncated or corrupt?): the decoder failed ({exc.detail})"
        )
    if exc.kind == "start":
        return f"{label}: could not decode the {what}: {exc.detail}"
    if exc.kind == "shape":
        return f"{label}: the {what} does not match the header's image size ({exc.detail})"
    return f"{label}: could not decode the {what} (truncated or corrupt?): {exc.detail}"
