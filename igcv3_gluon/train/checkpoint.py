"""Atomic, verifiable checkpoints: a killed run never leaves a half-written file.

A checkpoint ``ckpt-EEEE-BBBBB`` (completed epochs, batches done in the next one) is three files:
``.params`` (network), ``.states`` (trainer/optimizer state) and ``.json`` (metadata: epoch,
batch, best accuracy, seed, SHA-256 of the two others). Each is written to a temporary file
in the same folder and renamed into place (atomic on POSIX); the ``.json`` goes last, so a
checkpoint without it, or whose files do not match their hashes, is incomplete and skipped:
``latest()`` falls back to the previous one.
"""
import glob
import os

import mxnet as mx

from ..utils import atomic_write, atomic_write_json, read_json_object, sha256

__all__ = ["CheckpointManager", "epochs_done"]


def _well_formed(record):
    """A record with its position (``epochs_done``, ``batch``) and its files' names and
    hashes: what ``latest`` and ``load`` read."""
    return (isinstance(record, dict) and isinstance(record.get("epochs_done"), int)
            and isinstance(record.get("batch"), int) and isinstance(record.get("files"), dict)
            and "params" in record["files"] and isinstance(record.get("sha256"), dict))


def epochs_done(directory):
    """The most epochs a well-formed checkpoint record in ``directory`` says were done (0
    when there is none), read without creating anything or checking the files."""
    done = [record["epochs_done"] for record in _read_records(directory)]
    return max(done, default=0)


def _read_records(directory, damaged=None):
    """The well-formed checkpoint records of ``directory``, oldest first; the paths of the
    others (not JSON, or without their position and files) go to ``damaged`` when given."""
    records = []
    for path in glob.glob(os.path.join(glob.escape(directory), "ckpt-*.json")):
        try:
            record = read_json_object(path)
        except ValueError:
            record = None
        if not _well_formed(record):
            if damaged is not None:
                damaged.append(path)
            continue
        record["_path"] = path
        records.append(record)
    return sorted(records, key=lambda r: (r["epochs_done"], r["batch"]))


class CheckpointManager:
    def __init__(self, directory, keep=2):
        self.directory, self.keep = directory, keep
        os.makedirs(directory, exist_ok=True)

    def _stem(self, epochs_done, batch):
        return os.path.join(self.directory, "ckpt-%04d-%05d" % (epochs_done, batch))

    def save(self, net, trainer, epochs_done, batch=0, **meta):
        """Save after ``epochs_done`` complete epochs plus ``batch`` batches of the next one
        (``batch > 0`` only for an interrupted epoch)."""
        # MXNet does not order save_parameters after the backward pass's write of the
        # BatchNorm running statistics: without this barrier a checkpoint taken right after
        # a step can hold the statistics of one update earlier (and a resumed run diverges)
        mx.nd.waitall()
        stem = self._stem(epochs_done, batch)
        last = self._records()[-1:]
        size = {kind: os.path.getsize(os.path.join(self.directory, name))
                for record in last for kind, name in record["files"].items()
                if os.path.isfile(os.path.join(self.directory, name))}
        atomic_write(stem + ".params", net.save_parameters, size.get("params", 0))
        files = {"params": stem + ".params"}
        if trainer is not None:
            atomic_write(stem + ".states", trainer.save_states, size.get("states", 0))
            files["states"] = stem + ".states"
        record = dict(meta, epochs_done=epochs_done, batch=batch,
                      files={k: os.path.basename(v) for k, v in files.items()},
                      sha256={k: sha256(v) for k, v in files.items()})
        atomic_write_json(stem + ".json", record)
        self._prune()
        return record

    def _records(self, damaged=None):
        return _read_records(self.directory, damaged)

    def records(self):
        """The well-formed checkpoint records, oldest first (what each says it saved)."""
        return self._records()

    def verify(self, record):
        for key, name in record["files"].items():
            path = os.path.join(self.directory, str(name))
            if not os.path.isfile(path) or sha256(path) != record["sha256"].get(key):
                return False
        return True

    def latest(self, log=None):
        """The newest checkpoint whose files are complete, or None."""
        damaged = []
        records = self._records(damaged)
        if log:
            for path in damaged:
                log("checkpoint record %s is unreadable; ignored" % os.path.basename(path))
        for record in reversed(records):
            if self.verify(record):
                return record
            if log:
                log("checkpoint %s is incomplete or corrupted; using an older one"
                    % os.path.basename(record["_path"]))
        return None

    def any(self):
        """Whether the folder holds a checkpoint record at all (complete or not)."""
        return bool(glob.glob(os.path.join(self.directory, "ckpt-*.json")))

    def load(self, record, net, trainer=None, ctx=None):
        net.load_parameters(os.path.join(self.directory, record["files"]["params"]), ctx=ctx)
        if trainer is not None and "states" in record["files"]:
            trainer.load_states(os.path.join(self.directory, record["files"]["states"]))

    def _prune(self):
        """Keep the newest ``keep`` checkpoints of epoch ends and, when it is newer than all
        of them, the newest mid-epoch one (a timed or interrupted save); remove the rest (a
        run that checkpoints every few minutes keeps one mid-epoch checkpoint, not all)."""
        records = self._records()
        ends = [r for r in records if r["batch"] == 0][-self.keep:]
        newest_end = (ends[-1]["epochs_done"], 0) if ends else (-1, 0)
        mids = [r for r in records if r["batch"] > 0 and
                (r["epochs_done"], r["batch"]) > newest_end][-1:]
        kept = {r["_path"] for r in ends + mids}
        for record in records:
            if record["_path"] in kept:
                continue
            for name in list(record["files"].values()) + [os.path.basename(record["_path"])]:
                path = os.path.join(self.directory, name)
                if os.path.exists(path):
                    os.remove(path)
