"""TensorBoard scalars of a run, in ``RUN/tensorboard/`` (tensorboardX, a maintained writer of
TensorBoard's event files; mxboard's last release is from 2018).

Every scalar is written at the run's global step (batches trained since the start:
``epoch * batches_per_epoch + batch``), so batch curves (``train/*``) and epoch curves
(``epoch/*``: the epoch's training row and every validation metric, the detector's AP too)
share one x axis. A resumed run first cuts the event files back to the checkpoint it resumes
from (``prune``: batch scalars after its position, epoch scalars of epochs it has not
finished), so the curves continue without a step written twice, for every reader of the
files, not only for TensorBoard's ``purge_step``. ``read_scalars`` reads them back.
"""
import glob
import os
import struct
import time

from ..utils import atomic_write

__all__ = ["Scalars", "read_scalars", "read_events", "prune", "FOLDER"]

FOLDER = "tensorboard"
_BATCH, _EPOCH = "train/", "epoch/"


def read_events(path):
    """The ``Event`` protos of one event file, in order (a record cut short by a killed
    writer ends the list)."""
    from tensorboardX.proto import event_pb2
    events = []
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos + 12 <= len(data):
        length = struct.unpack("<Q", data[pos:pos + 8])[0]
        if pos + 12 + length + 4 > len(data):
            break
        event = event_pb2.Event()
        event.ParseFromString(data[pos + 12:pos + 12 + length])
        events.append(event)
        pos += 12 + length + 4
    return events


def read_scalars(folder):
    """``{tag: [(step, value), ...]}`` of every event file under ``folder``, in file order."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for event in read_events(path):
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def _keep(event, batch_step, epoch_step):
    tags = [v.tag for v in event.summary.value]
    if not tags:
        return True                                  # the file's version record
    limit = epoch_step if tags[0].startswith(_EPOCH) else batch_step
    return event.step <= limit


def prune(folder, batch_step, epoch_step):
    """Cut the event files under ``folder`` back to a checkpoint: batch scalars up to
    ``batch_step``, epoch scalars up to ``epoch_step`` (each file rewritten atomically)."""
    from tensorboardX.record_writer import RecordWriter

    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        events = read_events(path)
        kept = [e for e in events if _keep(e, batch_step, epoch_step)]
        if len(kept) == len(events):
            continue

        def write(tmp, kept=kept):
            writer = RecordWriter(tmp)
            for event in kept:
                writer.write(event.SerializeToString())
            writer.close()
        atomic_write(path, write)


class Scalars:
    """The writer of one run (rank 0; ``enabled=False`` writes nothing): ``batch`` and
    ``epoch`` scalars at a global step, one event per step. Written synchronously (not
    through tensorboardX's queue, whose ``flush`` does not wait for it): an epoch's scalars
    are on disk before the checkpoint that follows them."""

    def __init__(self, out_dir, enabled=True):
        self.folder = os.path.join(out_dir, FOLDER)
        self.enabled, self.writer = enabled, None

    def add(self, prefix, step, values):
        if not self.enabled:
            return
        if self.writer is None:         # the file with the first scalar (a start that fails
            from tensorboardX.event_file_writer import EventsWriter  # writes none)
            os.makedirs(self.folder, exist_ok=True)
            self.writer = EventsWriter(os.path.join(self.folder, "events"),
                                       ".%d" % os.getpid())
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary
        summary = Summary(value=[Summary.Value(tag=prefix + key, simple_value=float(value))
                                 for key, value in values.items()
                                 if isinstance(value, (int, float))
                                 and not isinstance(value, bool)])
        self.writer.write_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def batch(self, step, values):
        self.add(_BATCH, step, values)

    def epoch(self, step, values):
        self.add(_EPOCH, step, values)
        self.flush()

    def flush(self):
        """Everything written so far on disk (before every checkpoint: the curves a resumed
        run keeps are those its checkpoint had seen)."""
        if self.writer is not None:
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.writer, self.enabled = None, False
