"""Start MXNet parameter-server jobs on this machine: a scheduler, servers and workers, with
the DMLC_* environment of MXNet's ``tools/launch.py --launcher local``.

    python -m igcv3_gluon.train.launch -n 2 -s 1 -- \\
        python train_cifar.py --kvstore dist_sync --out-dir runs/dist

Every process gets DMLC_PS_ROOT_URI / DMLC_PS_ROOT_PORT (the scheduler, on loopback unless
``--host`` is given), DMLC_NUM_SERVER, DMLC_NUM_WORKER and its DMLC_ROLE. Scheduler and servers
are ``python -c "import mxnet"`` (MXNet runs the role's loop on import). The launcher waits
for the workers, stops everything after ``--timeout`` seconds, and returns the first non-zero
worker exit code. For several machines, start the same command on each with its own role
set by hand (docs/training.md, "Distributed training").
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import time

from ..errors import started

__all__ = ["free_port", "launch", "main"]


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def launch(command, num_workers=2, num_servers=1, host="127.0.0.1", port=None, timeout=None,
           env=None):
    """Run ``command`` (a list) as ``num_workers`` workers; returns their exit codes. A
    command that cannot be started (``OSError``), a timeout or Ctrl-C stops every process of
    the job (scheduler and servers too) before the error leaves."""
    port = port or free_port(host)
    base = dict(os.environ if env is None else env)
    base.update(DMLC_PS_ROOT_URI=host, DMLC_PS_ROOT_PORT=str(port),
                DMLC_NUM_SERVER=str(num_servers), DMLC_NUM_WORKER=str(num_workers),
                DMLC_NODE_HOST=host, PS_VERBOSE=base.get("PS_VERBOSE", "0"))
    role_cmd = [sys.executable, "-c", "import mxnet"]
    procs, workers = [], []
    try:
        procs.append(subprocess.Popen(role_cmd, env=dict(base, DMLC_ROLE="scheduler")))
        procs += [subprocess.Popen(role_cmd, env=dict(base, DMLC_ROLE="server"))
                  for _ in range(num_servers)]
        for _ in range(num_workers):
            workers.append(subprocess.Popen(command, env=dict(base, DMLC_ROLE="worker")))
        return _wait(workers, timeout)
    finally:
        for proc in workers + procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _wait(workers, timeout):
    """The workers' exit codes once all ended, or the first failure; TimeoutError after
    ``timeout`` seconds."""
    deadline = None if timeout is None else time.time() + timeout
    codes = [None] * len(workers)
    while any(c is None for c in codes):
        for i, proc in enumerate(workers):
            if codes[i] is None:
                codes[i] = proc.poll()
        if any(c not in (None, 0) for c in codes):
            break                                   # a failed worker: stop the job
        if deadline is not None and time.time() > deadline:
            raise TimeoutError("distributed job exceeded %ss" % timeout)
        time.sleep(0.2)
    return [proc.returncode if code is None else code for proc, code in zip(workers, codes)]


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m igcv3_gluon.train.launch",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--num-workers", type=int, default=2)
    parser.add_argument("-s", "--num-servers", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1", help="scheduler address")
    parser.add_argument("--port", type=int, default=None, help="scheduler port (default: free)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before killing")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the worker command")
    return parser


def main(argv=None):
    started()
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.exit(2, "error: give the worker command after --\n")
    if args.num_workers < 1 or args.num_servers < 1:
        parser.exit(2, "error: --num-workers and --num-servers must be at least 1\n")
    if shutil.which(command[0]) is None:
        parser.exit(2, "error: cannot start the worker command %s: not found, or not "
                       "executable\n" % command[0])
    try:
        codes = launch(command, args.num_workers, args.num_servers, args.host, args.port,
                       args.timeout)
    except TimeoutError as err:
        parser.exit(124, "error: %s\n" % err)
    except OSError as err:
        parser.exit(2, "error: cannot start the worker command %s: %s\n"
                    % (command[0], err.strerror or err))
    except KeyboardInterrupt:
        parser.exit(130, "interrupted: every process of the job was stopped\n")
    bad = [c for c in codes if c]
    return bad[0] if bad else 0


if __name__ == "__main__":
    sys.exit(main())
