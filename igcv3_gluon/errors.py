"""Errors that end a command line with one line of text (no traceback)."""
import sys

__all__ = ["UsageError", "exit_on_usage_error"]


class UsageError(Exception):
    """Bad input at the edge (argument, data directory, file): the message names the
    problem and the fix. Command lines print it on one line and exit with ``code``."""

    def __init__(self, message, code=2):
        super().__init__(message)
        self.code = code


def exit_on_usage_error(main):
    """Decorator for ``main(argv)`` functions: a UsageError becomes ``prog: error: ...``
    on stderr and its exit code; Ctrl-C outside the training loop exits 130 quietly."""
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UsageError as err:
            prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "igcv3"
            if prog == "__main__.py":                     # python -m package
                prog = sys.argv[0].rsplit("/", 2)[-2]
            sys.stderr.write("%s: error: %s\n" % (prog, err))
            return err.code
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            return 130
    wrapper.__name__ = main.__name__
    wrapper.__doc__ = main.__doc__
    return wrapper
