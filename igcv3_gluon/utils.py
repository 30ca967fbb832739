"""Neutral helpers every package may use (they import only ``errors``, which imports nothing):
messages for a person, atomic file writes, figures, progress bars, signal handling and a
per-folder lock."""
import contextlib
import errno
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import threading

from tqdm import tqdm

from .errors import FolderBusy, OutputConflict

__all__ = ["say", "atomic_write", "DiskFull", "write_stopped", "remove_files", "file_digest",
           "atomic_write_json", "read_json_object", "sha256", "save_figure", "progress_bar",
           "deferred_interrupts", "ignore_interrupts", "FolderLock", "FolderBusy", "read_jsonl",
           "remove_stale_temp_files", "same_file", "refuse_overwrite", "staged", "pid_alive",
           "interrupts_raise"]


def say(message):
    """Progress text for a person: stderr, flushed (stdout stays for results)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def file_digest(path, algorithm="sha256"):
    """The hex digest of a file's bytes (read in 1 MB pieces)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256(path):
    return file_digest(path, "sha256")


class DiskFull(OSError):
    """A write that stopped: the device is full (``errno.ENOSPC``) or a file-size limit or
    quota cut it (``errno.EFBIG``); ``needed``: the bytes the file needs at least (its size
    when it was written before, else what was written when it stopped) and ``free``: the
    bytes left on the device."""

    def __init__(self, path, needed, free, code=errno.ENOSPC):
        super().__init__(code, os.strerror(code), path)
        self.needed, self.free = needed, free


def _stopped_write(err, folder):
    """The errno of a write that stopped (an OSError, or MXNet's ``FileStream.Write
    incomplete``, which says neither why): ENOSPC when the device is full, EFBIG for a
    size limit or quota; None for other errors."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return errno.EFBIG if err.errno == errno.EFBIG else errno.ENOSPC
    if isinstance(err, Exception) and ("Write incomplete" in str(err)
                                       or "No space left" in str(err)):
        return errno.ENOSPC if shutil.disk_usage(folder).free < (1 << 20) else errno.EFBIG
    return None


def remove_files(*paths):
    """Remove those of ``paths`` that exist (what a failed write leaves behind)."""
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def write_stopped(err, path, size_hint=0):
    """``err`` raised while writing ``path`` as a ``DiskFull`` (one line for the command
    lines), or None when it is not a stopped write."""
    folder = os.path.dirname(os.path.abspath(path))
    code = None if isinstance(err, DiskFull) else _stopped_write(err, folder)
    if code is None:
        return None
    written = os.path.getsize(path) if os.path.exists(path) else 0
    return DiskFull(path, max(written, size_hint), shutil.disk_usage(folder).free, code)


def atomic_write(path, write, size_hint=0):
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``path`` (after an fsync), so that a
    killed process never leaves a half-written ``path``. A full device is a ``DiskFull``
    (nothing half-written is left; ``size_hint``: the bytes the file is expected to need)."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except Exception as err:
        if os.path.exists(path):
            size_hint = max(size_hint, os.path.getsize(path))
        stopped = write_stopped(err, tmp, size_hint)
        if stopped is not None:
            stopped.filename = path
            raise stopped from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(folder, names):
    """Remove the temporary files (``NAME.tmpPID``, ``atomic_write``'s; ``NAME.partPID``,
    ``staged``'s) that processes which no longer exist left in ``folder`` for the files it
    names: ``names`` are file names or glob patterns (``ckpt-*``) of ``folder`` itself,
    nothing below it and nothing else is looked at. Returns the removed paths. Files of a
    living process are left alone."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        match = re.match(r"^(.*)\.(tmp|part)(\d+)$", name)
        if not match or not any(fnmatch.fnmatchcase(match.group(1), n) for n in names) \
                or pid_alive(int(match.group(3))):
            continue
        path = os.path.join(folder, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def same_file(a, b):
    """Whether the paths ``a`` and ``b`` name one existing file, however spelled (relative or
    absolute, through a symbolic link, a second hard link): compared by device and inode."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def refuse_overwrite(outputs, inputs=()):
    """Before anything is written: ``OutputConflict`` for an output that is an existing
    folder, or that is one of the files the caller reads, however the path is spelled.
    ``inputs``: paths, or ``(path, what)`` pairs (``what`` names the file in the message)."""
    named = [item if isinstance(item, tuple) else (item, None) for item in inputs]
    for out in outputs:
        if os.path.isdir(out):
            raise OutputConflict("%s is a folder: give the path of the file to write (or the "
                                 "prefix of its files)" % out)
        for path, what in named:
            if path and same_file(out, path):
                raise OutputConflict("%s is %s, which this command reads: writing it would "
                                     "destroy the input; give another output"
                                     % (out, what or "an input"))


def _remove_stale_stages(prefix, suffixes):
    """The staged files of ``prefix`` (``prefix.partPID + suffix``) whose process is dead."""
    folder = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(folder):
        return
    patterns = [re.compile(re.escape(os.path.basename(prefix)) + r"\.part(\d+)" +
                           re.escape(suffix) + "$") for suffix in suffixes]
    for name in os.listdir(folder):
        for pattern in patterns:
            match = pattern.match(name)
            if match and not pid_alive(int(match.group(1))):
                remove_files(os.path.join(folder, name))


@contextlib.contextmanager
def staged(prefix, suffixes):
    """An output of several files (``prefix + suffix`` each) written under a staging prefix
    (``prefix.partPID``, yielded) and given its names only when the block ends normally: a
    check that fails, an error or Ctrl-C inside the block leaves nothing under the final
    names and removes what was staged. The renames happen with interrupts held (no half set
    after Ctrl-C); staging files of dead processes (a SIGKILL) are removed first."""
    _remove_stale_stages(prefix, suffixes)
    stage = "%s.part%d" % (prefix, os.getpid())
    try:
        yield stage
        with deferred_interrupts():
            for suffix in suffixes:
                if os.path.exists(stage + suffix):
                    os.replace(stage + suffix, prefix + suffix)
    except Exception as err:        # a write that stopped (full disk, size limit): one line
        written = [s for s in suffixes if os.path.exists(stage + s)]
        stopped = write_stopped(err, stage + (written[-1] if written else suffixes[0]))
        if stopped is not None:
            stopped.filename = prefix + (written[-1] if written else suffixes[0])
            raise stopped from None
        raise
    finally:
        remove_files(*(stage + suffix for suffix in suffixes))


def atomic_write_json(path, obj, **dump_kwargs):
    """``atomic_write`` of ``obj`` as indented JSON."""
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=1, **dump_kwargs)
    atomic_write(path, write)


def read_json_object(path):
    """The JSON object (a dict) in ``path``, or None when there is no such file; a folder of
    that name, or a file that cannot be read, is not JSON (cut short by a killed writer,
    edited by hand) or holds another kind of value raises ValueError naming it."""
    if os.path.isdir(path):
        raise ValueError("%s is a folder, not a JSON file" % path)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as fh:
            value = json.load(fh)
    except (OSError, ValueError) as err:
        raise ValueError("%s is not readable JSON (%s)" % (path, str(err)[:80])) from None
    if not isinstance(value, dict):
        raise ValueError("%s holds a JSON %s, not an object" % (path, type(value).__name__))
    return value


def read_jsonl(path):
    """The JSON objects of a ``.jsonl`` file, one per line; a line that is not one (cut
    short by a killed writer, NUL bytes a crashed file system left, bytes that are not
    UTF-8, a hand edit) is dropped. A missing file reads as no records."""
    if not os.path.isfile(path):
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip().strip("\x00")
            if line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    out.append(record)
    return out


def save_figure(fig, path, dpi=100):
    """Write a matplotlib figure as PNG atomically and close it; returns ``path``."""
    import matplotlib.pyplot as plt
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi,
                                                   bbox_inches="tight"))
    finally:
        plt.close(fig)
    return path


def progress_bar(total, initial=0, desc="", enabled=True, unit="batch"):
    """A tqdm bar on a terminal; nothing when stderr is a file or pipe (logs stay readable)."""
    enabled = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, leave=False,
                dynamic_ncols=True, unit=unit)


def _main_thread():
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deferred_interrupts():
    """Hold SIGINT / SIGTERM until the block ends, then hand them to the handler that was in
    place (Python's default raises KeyboardInterrupt; a training run's sets its stop flag)."""
    if not _main_thread():
        yield
        return
    caught = []
    old = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
           for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    for signum in caught:
        handler = old[signum]
        if callable(handler):
            handler(signum, None)
        else:
            raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_raise():
    """SIGINT and SIGTERM both raise KeyboardInterrupt inside the block (where no batch
    boundary will come to stop at: writing the exports of a finished run), so that what was
    begun is cleaned up and the command says how to finish; the handlers are restored
    after."""
    if not _main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt
    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def ignore_interrupts():
    """SIGINT ignored inside the block: processes forked here (data-loading workers) inherit
    it, so a Ctrl-C on the terminal reaches only the main process, which stops cleanly."""
    if not _main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class FolderLock:
    """An exclusive lock on ``folder/.lock`` (``fcntl.flock``): held while the process lives
    and released by the kernel when it dies, even by SIGKILL, so no stale lock is left.
    The file holds the owner's pid, for the message of whoever finds it taken."""

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, ".lock")
        self._fh = None

    def acquire(self):
        os.makedirs(self.folder, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            fh.seek(0)
            pid = fh.read().strip() or "?"
            fh.close()
            raise FolderBusy(self.folder, pid)
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def release(self):
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
