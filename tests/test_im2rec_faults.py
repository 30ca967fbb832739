"""im2rec on real-world trees: cut-off and empty images are named and skipped (or stop the
packing), empty class folders are warned about, and nothing is left behind on failure."""
import os

import cv2
import mxnet as mx
import numpy as np
import pytest

from igcv3_gluon.data.im2rec import pack_folder
from igcv3_gluon.errors import DataError
from igcv3_gluon.im2rec import main


def _jpg(path, seed):
    img = np.random.RandomState(seed).randint(0, 255, (40, 50, 3)).astype(np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, img)
    return path


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "images"
    for i in range(3):
        _jpg(str(root / "a" / ("%d.jpg" % i)), i)
    cut = _jpg(str(root / "a" / "cut.jpg"), 9)
    data = open(cut, "rb").read()
    open(cut, "wb").write(data[:len(data) // 2])
    open(str(root / "a" / "empty.jpg"), "wb").close()
    os.makedirs(str(root / "b"))                                   # an empty class
    for i in range(2):
        _jpg(str(root / "c" / ("%d.jpg" % i)), 10 + i)
    return str(root)


def _leftovers(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".part"))


def test_damaged_images_are_named_and_skipped_and_empty_classes_warned(tree, tmp_path, capsys):
    prefix = str(tmp_path / "rec" / "set")
    assert main([tree, prefix, "--no-progress", "--no-shuffle"]) == 0
    out = capsys.readouterr()
    assert "skipped (a JPEG cut off before its end marker): %s" \
        % os.path.join(tree, "a", "cut.jpg") in out.err
    assert "skipped (empty): %s" % os.path.join(tree, "a", "empty.jpg") in out.err
    assert "warning: 1 class folder(s) of %s hold no image and keep their label all the same: "\
        "b" % tree in out.err
    assert "Premature end" not in out.err                 # libjpeg never saw the cut file
    assert "set.rec: 5 images, 3 classes, 2 skipped" in out.out
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "r")
    labels = [mx.recordio.unpack(rec.read_idx(i))[0].label for i in rec.keys]
    assert sorted(labels) == [0, 0, 0, 2, 2]
    assert open(prefix + ".classes.txt").read().split() == ["a", "b", "c"]


def test_on_damaged_stop_and_a_tree_where_nothing_decodes_leave_nothing(tree, tmp_path):
    prefix = str(tmp_path / "rec" / "set")
    with pytest.raises(DataError, match=r"(cut|empty)\.jpg: (a JPEG cut off|empty).*"
                                         r"skip damaged images"):
        pack_folder(tree, prefix, shuffle=False, progress=False, on_damaged="stop")
    assert os.listdir(str(tmp_path / "rec")) == []
    for name in os.listdir(os.path.join(tree, "a")):
        if name[0].isdigit():
            os.remove(os.path.join(tree, "a", name))
    for name in os.listdir(os.path.join(tree, "c")):
        open(os.path.join(tree, "c", name), "wb").write(b"not a picture")
    with pytest.raises(DataError, match=r"no image under .* could be decoded \(4 damaged"):
        pack_folder(tree, prefix, shuffle=False, progress=False)
    assert _leftovers(str(tmp_path / "rec")) == [] and os.listdir(str(tmp_path / "rec")) == []


def test_links_to_nowhere_other_files_and_a_folder_as_prefix(tree, tmp_path, capsys):
    os.symlink(str(tmp_path / "nowhere.jpg"), os.path.join(tree, "c", "broken.jpg"))
    open(os.path.join(tree, "c", "notes.txt"), "w").write("not an image")
    _jpg(os.path.join(tree, "c", "pal.gif.png"), 20)
    prefix = str(tmp_path / "rec" / "set")
    assert main([tree, prefix, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "skipped (unreadable: No such file or directory): %s" % os.path.join(
        tree, "c", "broken.jpg") in err
    assert "note: 1 file(s) under %s are not of the packed kinds (.jpg, .jpeg, .png" % tree \
        in err and "e.g. c/notes.txt" in err
    os.makedirs(str(tmp_path / "out"))
    bad = str(tmp_path / "out") + os.sep
    assert main([tree, bad, "--no-progress"]) == 2
    assert "the output prefix %s is a folder: give PREFIX" % bad in capsys.readouterr().err
    assert os.listdir(str(tmp_path / "out")) == []


def test_class_lists_that_are_empty_or_repeat_a_name_and_names_that_are_not_utf8(
        tree, tmp_path, capsys):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "empty.txt").write_text("\n")
    (lists / "twice.txt").write_text("a\na\nb\nc\n")
    prefix = str(tmp_path / "rec" / "set")
    assert main([tree, prefix, "--classes-from", str(lists / "empty.txt")]) == 2
    assert "--classes-from %s is empty" % (lists / "empty.txt") in capsys.readouterr().err
    assert main([tree, prefix, "--classes-from", str(lists / "twice.txt")]) == 2
    assert "names a more than once" in capsys.readouterr().err
    name = os.path.join(os.fsencode(tree), b"c", b"caf\xe9.jpg")       # latin-1, not UTF-8
    with open(name, "wb") as fh:
        fh.write(open(os.path.join(tree, "c", "0.jpg"), "rb").read())
    assert main([tree, prefix, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "note: 1 image(s) under %s have names that are not UTF-8" % tree in err
    assert sorted(os.listdir(str(tmp_path / "rec"))) == [
        "set.classes.txt", "set.idx", "set.lst", "set.rec"]
    # a line break or tab in a name would split a text row: an image is left out like the
    # above (every .lst row keeps its three fields), a class folder is refused
    import shutil
    shutil.copy(os.path.join(tree, "c", "0.jpg"), os.path.join(tree, "c", "new\nline.jpg"))
    shutil.copy(os.path.join(tree, "c", "0.jpg"), os.path.join(tree, "c", "tab\tbed.jpg"))
    assert main([tree, str(tmp_path / "rec2" / "set"), "--no-progress"]) == 0
    assert "note: 3 image(s) under %s have names that are not UTF-8 or hold a line break or " \
        "tab" % tree in capsys.readouterr().err
    rows = open(str(tmp_path / "rec2" / "set.lst")).read().splitlines()
    assert rows and all(len(row.split("\t")) == 3 for row in rows)
    os.mkdir(os.path.join(tree, "d\ne"))
    shutil.copy(os.path.join(tree, "c", "0.jpg"), os.path.join(tree, "d\ne", "0.jpg"))
    assert main([tree, str(tmp_path / "rec3" / "set"), "--no-progress"]) == 2
    assert "class folder 'd\\ne' of %s has a line break or tab in its name" % tree in \
        capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / "rec3"))
