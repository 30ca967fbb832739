"""CIFAR binary reader, the embedded digits set, and the augmentation pipeline."""
import os
import tarfile

import numpy as np
import pytest

from igcv3_gluon.data import (
    EpochBatches,
    channel_stats,
    crop_flip_keys,
    load_cifar,
    load_dataset,
    load_digits32,
    make_loader,
    write_cifar_binary,
)
from igcv3_gluon.errors import DataError

from conftest import fake_cifar10


def test_reads_cifar10_binary_exactly(tmp_path):
    _, data = fake_cifar10(str(tmp_path))
    tr_x, tr_y, te_x, te_y = load_cifar(str(tmp_path), "cifar10")
    assert tr_x.shape == (15, 32, 32, 3) and tr_x.dtype == np.uint8 and te_x.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(tr_x[:3], data["data_batch_1.bin"][0])
    np.testing.assert_array_equal(tr_y[3:6], data["data_batch_2.bin"][1])
    np.testing.assert_array_equal(te_x, data["test_batch.bin"][0])


def test_record_layout_is_label_then_rgb_planes(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    record = bytes([7]) + bytes([10] * 1024 + [20] * 1024 + [30] * 1024)
    for name in ["data_batch_%d.bin" % i for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(record)
    tr_x, tr_y, _, _ = load_cifar(str(tmp_path))
    assert tr_y.tolist() == [7] * 5
    assert tr_x[0, 5, 9].tolist() == [10, 20, 30]


def test_cifar100_uses_fine_label_and_archive(tmp_path):
    rng = np.random.RandomState(1)
    src = tmp_path / "src" / "cifar-100-binary"
    src.mkdir(parents=True)
    images = rng.randint(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    write_cifar_binary(str(src / "train.bin"), images, [99, 5, 0, 42], coarse_labels=[1, 2, 3, 4])
    write_cifar_binary(str(src / "test.bin"), images[:2], [3, 4], coarse_labels=[0, 0])
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(str(data / "cifar-100-binary.tar.gz"), "w:gz") as tar:
        tar.add(str(src), arcname="cifar-100-binary")
    tr_x, tr_y, te_x, te_y, classes = load_dataset("cifar100", str(data))
    assert classes == 100 and tr_y.tolist() == [99, 5, 0, 42] and te_y.tolist() == [3, 4]
    np.testing.assert_array_equal(tr_x, images)


@pytest.mark.parametrize("damage,match", [
    ("truncate", "not a whole number"), ("missing", "no CIFAR binary files"),
    ("nodir", "does not exist"), ("badtar", "not a readable")])
def test_bad_data_dirs_give_one_line_errors(tmp_path, damage, match):
    root = str(tmp_path)
    if damage == "truncate":
        folder, _ = fake_cifar10(root)
        path = os.path.join(folder, "data_batch_3.bin")
        open(path, "r+b").truncate(3073 * 2 + 100)
    elif damage == "nodir":
        root = os.path.join(root, "nowhere")
    elif damage == "badtar":
        (tmp_path / "cifar-10-binary.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match=match) as err:
        load_cifar(root, "cifar10")
    assert "\n" not in str(err.value)


def test_digits_embedded_set():
    tr_x, tr_y, te_x, te_y = load_digits32()
    assert tr_x.shape == (1437, 32, 32, 3) and te_x.shape == (360, 32, 32, 3)
    assert tr_x.dtype == np.uint8 and tr_x.max() == 255
    assert sorted(set(te_y.tolist())) == list(range(10))
    again = load_digits32()
    np.testing.assert_array_equal(again[3], te_y)          # the split is fixed


def test_sampler_augmentation_is_seeded_sharded_and_resumable():
    keys = crop_flip_keys(4, True)
    s = EpochBatches(100, 10, True, seed=3, keys=keys)
    s.set_epoch(0)
    epoch0 = list(s)
    assert len(epoch0) == 10 == len(s) == s.batches_per_epoch
    flat = [k for batch in epoch0 for k in batch]
    assert sorted(k[0] for k in flat) == list(range(100))
    assert all(0 <= k[1] <= 8 and 0 <= k[2] <= 8 for k in flat)
    assert 20 < sum(k[3] for k in flat) < 80                      # flips happen
    s.set_epoch(0)
    assert list(s) == epoch0                                       # reproducible
    s.set_epoch(1)
    assert list(s) != epoch0                                       # a new epoch differs
    s.set_epoch(0, start_batch=4)
    assert list(s) == epoch0[4:] and len(s) == 6                   # resume mid-epoch
    # two workers: each takes its half of every global batch, so a step sees the same
    # images (and augmentation) whatever the number of workers
    shards = [EpochBatches(100, 10, True, 3, rank=r, num_parts=2, keys=keys) for r in (0, 1)]
    for shard in shards:
        shard.set_epoch(0)
    halves = [list(shard) for shard in shards]
    assert [a + b for a, b in zip(*halves)] == epoch0
    idx = [set(k[0] for b in h for k in b) for h in halves]
    assert not idx[0] & idx[1] and len(idx[0] | idx[1]) == 100
    # evaluation: every sample once, in order, the last batch short, the same on every rank
    ev = EpochBatches(23, 10, False)
    assert list(ev) == [list(range(10)), list(range(10, 20)), [20, 21, 22]]


def test_loader_crops_flips_and_normalises():
    images = np.zeros((4, 32, 32, 3), np.uint8)
    images[:, :, :16] = 200                                        # left half bright
    mean, std = channel_stats(images)
    batches = make_loader(images, [0, 1, 2, 3], mean, std, 4, True, seed=0, workers=0)
    ds = batches.loader._dataset
    plain, _ = ds[(0, 4, 4, False)]
    flipped, _ = ds[(0, 4, 4, True)]
    shifted, _ = ds[(0, 0, 0, False)]
    np.testing.assert_allclose(plain, flipped[:, :, ::-1])
    assert plain.shape == (3, 32, 32) and plain.dtype == np.float32
    assert abs(plain.mean()) < 1e-5                                # normalised
    assert (shifted[:, :4, :] == shifted.min()).all()              # zero padding
    batch = next(iter(batches))
    assert batch[0].shape == (4, 3, 32, 32)


@pytest.mark.parametrize("mean, std, ok", [
    ([77.5] * 3, [82.4] * 3, True), ([77.5] * 3, None, False), ([77.5, 77.5], [82.4] * 3, False),
    ([77.5] * 3, [82.4, 0, 82.4], False), ("abc", [82.4] * 3, False),
    ([77.5, "x", 1], [82.4] * 3, False)])
def test_a_digits_config_must_hold_its_normalisation(tmp_path, mean, std, ok):
    """``--digits-config``: a config without ``std``, with two means, a zero std or text
    is one ``ValueError`` naming the file, not a KeyError or a broadcast error."""
    import json

    from igcv3_gluon.data.digits import digits_arrays
    config = dict(dataset="digits", model="cifar_igcv3_d_0.5", epochs=1, seed=0, mean=mean)
    if std is not None:
        config["std"] = std
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    if ok:
        from igcv3_gluon.data.cifar import load_dataset
        (train_x, train_y), _ = digits_arrays(str(path))
        raw = load_dataset("digits")[0]
        assert train_x.shape == (len(raw), 3, 32, 32) and len(train_x) == len(train_y)
        np.testing.assert_allclose(train_x[5], ((raw[5] - 77.5) / 82.4).transpose(2, 0, 1),
                                   rtol=1e-6)
    else:
        with pytest.raises(ValueError, match="%s holds mean .* a digits run's config.json has "
                                             "three numbers each" % path):
            digits_arrays(str(path))
