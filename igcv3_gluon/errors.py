"""Errors that end a command line with one line of text (no traceback)."""
import contextlib
import errno
import os
import signal
import sys
import threading

__all__ = ["ProjectError", "DataError", "SetupError", "WeightsError", "DownloadError",
           "CheckFailed", "NonFiniteLoss", "Interrupted", "RunMismatch", "FolderBusy",
           "OutputConflict", "UsageError", "exit_on_usage_error", "naming",
           "quiet_interrupts_while_starting"]


class ProjectError(Exception):
    """An error of the library whose message is one line naming the problem and the fix;
    command lines print it without a traceback and exit with ``code``."""
    code = 2


class DataError(ProjectError, ValueError):
    """A data set, data file or folder that cannot be used as it is (missing, damaged, in
    another format, labels out of range); the message names it and what to do."""


class SetupError(ProjectError, ValueError):
    """Settings of a run that do not go together (devices, kvstore, batch size)."""


class WeightsError(ProjectError, ValueError):
    """A weights file that cannot be read, converted, or does not fit the network."""


class DownloadError(ProjectError):
    """Published weights that could not be downloaded, or arrived damaged (nothing is
    cached then); the message names the address and where to put the file by hand."""


class CheckFailed(ProjectError):
    """A converted model that does not compute what its source computes: ``value`` (the
    measured difference) above ``limit``. Exit code 1 (a result, not a usage error)."""
    code = 1

    def __init__(self, message, value=None, limit=None):
        super().__init__(message)
        self.value, self.limit = value, limit


class NonFiniteLoss(ProjectError):
    """Training stopped on a NaN or infinite loss: ``value``, ``stage``/``epoch``/``batch``
    where, ``checkpoint`` the last good one (or None), ``fix`` what to change before running
    again (a command line names its flags: ``with_fix``). Exit code 3."""
    code = 3

    def __init__(self, value, stage, epoch, batch, checkpoint,
                 fix="lower the learning rate or warm it up"):
        self.value, self.stage, self.epoch, self.batch = value, stage, epoch, batch
        self.checkpoint, self.fix = checkpoint, fix
        super().__init__(self._message())

    def _message(self):
        return ("loss is %s at %s %d, batch %d: stopped; the last good checkpoint is %s (%s, "
                "then re-run to resume from it)" % (self.value, self.stage, self.epoch,
                                                    self.batch, self.checkpoint or "none yet",
                                                    self.fix))

    def with_fix(self, fix):
        """The same stop, advising ``fix`` (e.g. the flags that change the learning rate)."""
        self.fix = fix
        self.args = (self._message(),)
        return self


class Interrupted(ProjectError):
    """A run stopped by Ctrl-C / SIGTERM; the message says where it was saved. Exit 130."""
    code = 130


class RunMismatch(ProjectError):
    """An output folder holding another run: ``keys`` that differ, ``old`` their values."""

    def __init__(self, message, keys=(), old=None):
        super().__init__(message)
        self.keys, self.old = list(keys), dict(old or {})


class FolderBusy(ProjectError):
    """Another live process holds the output folder's lock; ``pid`` is that process."""

    def __init__(self, folder, pid):
        super().__init__("%s is in use by a run still going (process %s): wait for it to end, "
                         "stop it, or use another output folder" % (folder, pid))
        self.folder, self.pid = folder, pid


class OutputConflict(ProjectError, ValueError):
    """An output path that would destroy something: a file the command reads (however the
    path is spelled), an existing folder where a file goes, or a folder holding files that
    are not a run of this project. Raised before anything is written."""


class UsageError(ProjectError):
    """Bad input at the edge (argument, data directory, file): the message names the
    problem and the fix. Command lines print it on one line and exit with ``code``."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def naming(flag):
    """For command lines: a library error raised inside (phrased in values, naming the file
    or the number) gets the ``flag`` that supplied the value in front, keeping its type:
    ``--rec-val: data/val.rec does not exist; ...``."""
    try:
        yield
    except ProjectError as err:
        err.args = ("%s: %s" % (flag, err),)
        raise


def _size(n):
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "bytes" else "%.1f %s" % (n, unit)
        n /= 1024.0


def _left_intact(path):
    """What a stopped write leaves: in a training run's folder its finished checkpoints too."""
    folder = os.path.dirname(os.path.abspath(path)) if path else ""
    in_run = any(os.path.isfile(os.path.join(f, "config.json"))    # the run, or its
                 for f in (folder, os.path.dirname(folder)))      # checkpoints/, export/
    return ("the run's finished checkpoints are intact, nothing half-written is left" if in_run
            else "nothing half-written is left under its name")


def _file_error(err):
    """One line for an output path that cannot be written (a parent that is a file, no
    permission, a read-only or full disk); None for other errors."""
    path = err.filename or ""
    if err.errno in (errno.ENOTDIR, errno.EEXIST) and path:
        parent = os.path.abspath(path)
        while parent != os.path.dirname(parent) and not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if os.path.isfile(parent):
            return ("cannot write under %s: it is a file, not a folder; choose another output "
                    "path" % parent)
        return "cannot write %s (%s); choose another output path" % (path, err.strerror)
    if err.errno in (errno.EACCES, errno.EROFS, errno.EISDIR):
        return "cannot write %s (%s); choose another output path" % (path, err.strerror)
    if err.errno == errno.EFBIG:
        return ("cannot write %s: the write stopped after %d bytes (a file-size limit such as "
                "`ulimit -f`, or a quota): raise the limit or choose another output path "
                "(%s)" % (path, getattr(err, "needed", 0), _left_intact(path)))
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = os.path.dirname(os.path.abspath(path)) if path else "the output folder"
        needed = getattr(err, "needed", 0)
        free = getattr(err, "free", None)
        space = ""
        if needed:
            space = "; %s needs at least %s%s" % (
                os.path.basename(path), _size(needed),
                ", %s free" % _size(free) if free is not None else "")
        return ("no space left on the device of %s (%s%s): free some space and run the same "
                "command again (%s)" % (folder, err.strerror, space, _left_intact(path)))
    return None


def _prog():
    """The command's name as the user typed it, as argparse's own usage errors name it: a
    module of the package run with ``-m`` is ``python -m igcv3_gluon.im2rec`` (not the
    ``im2rec.py`` of its file), a script its file name (``train_cifar.py``)."""
    package = __name__.split(".")[0]
    name = None
    if sys.argv[:1] == ["-m"] and "-m" in getattr(sys, "orig_argv", [])[:-1]:
        name = sys.orig_argv[sys.orig_argv.index("-m") + 1]              # still starting
    else:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        name = getattr(spec, "name", None)
    if name and name.split(".")[0] == package:
        return "python -m " + (name[:-len(".__main__")] if name.endswith(".__main__")
                               else name)
    if not (sys.argv and sys.argv[0]):
        return package
    prog = os.path.basename(sys.argv[0])
    return os.path.basename(os.path.dirname(sys.argv[0])) if prog == "__main__.py" else prog


def _interrupted_while_starting(signum, frame):
    terminated = signum == signal.SIGTERM
    sys.stderr.write("%s: %s while starting\n" % (_prog(), "terminated" if terminated
                                                   else "interrupted"))
    sys.stderr.flush()
    os._exit(143 if terminated else 130)


def quiet_interrupts_while_starting():
    """For a command started from a terminal (``python train_cifar.py``, ``python -m
    igcv3_gluon.deploy``): Ctrl-C while its modules import (MXNet takes seconds) ends it with
    one line and exit code 130 instead of a traceback through MXNet's import (SIGTERM: one
    line and 143 rather than a silent end). The command's
    ``main`` (``exit_on_usage_error``) restores Python's own handling. Called by the package
    on import; does nothing when the package is imported by other code (a notebook, a test,
    a user's program), where Ctrl-C must stay a KeyboardInterrupt."""
    main = sys.modules.get("__main__")
    script = os.path.abspath(getattr(main, "__file__", None) or os.devnull)
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    started = sys.argv[:1] == ["-m"] or os.path.dirname(script) == project
    if started and threading_is_main():
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupted_while_starting)
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:      # said too, exit 143
            signal.signal(signal.SIGTERM, _interrupted_while_starting)


class Terminated(KeyboardInterrupt):
    """SIGTERM inside ``sigterm_raises``: unwinds like Ctrl-C (staged files and temporary
    folders removed), then ``prog: terminated`` and exit 143."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def sigterm_raises():
    """SIGTERM raises ``Terminated`` inside the block (a command's work that holds no
    training loop: the deploy commands), instead of ending the process with its staging
    files and temporary folders left behind and no word."""
    if not threading_is_main() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def started():
    """A command's ``main`` has begun: Python's own handling of SIGINT and SIGTERM again
    (``quiet_interrupts_while_starting`` covered the imports only)."""
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is _interrupted_while_starting:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def threading_is_main():
    return threading.current_thread() is threading.main_thread()


def exit_on_usage_error(main):
    """Decorator for ``main(argv)`` functions: a ProjectError (UsageError, WeightsError,
    DownloadError) becomes ``prog: error: ...``
    on stderr and its exit code; Ctrl-C outside the training loop exits 130 quietly."""
    def wrapper(*args, **kwargs):
        started()
        try:
            return main(*args, **kwargs)
        except Interrupted as err:                 # a stop asked for, not an error
            sys.stderr.write("%s: %s\n" % (_prog(), err))
            return err.code
        except ProjectError as err:
            sys.stderr.write("%s: error: %s\n" % (_prog(), err))
            return err.code
        except Terminated:
            sys.stderr.write("%s: terminated\n" % _prog())
            return 143
        except KeyboardInterrupt:
            sys.stderr.write("%s: interrupted\n" % _prog())
            return 130
        except OSError as err:
            message = _file_error(err)
            if message is None:
                raise
            sys.stderr.write("%s: error: %s\n" % (_prog(), message))
            return 1 if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else 2
    wrapper.__name__ = main.__name__
    wrapper.__doc__ = main.__doc__
    return wrapper
