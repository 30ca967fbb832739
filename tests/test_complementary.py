"""The complementary-condition checker (Sec. 3.2, Conditions 1 and 2)."""
import pytest

import igcv3_gluon
from igcv3_gluon.nn import IGCV3Block, InterleavedPointwise, MobileNetV2Block
from igcv3_gluon.nn.complementary import check_block, check_network, group_mask


def test_group_mask_is_block_diagonal():
    mask = group_mask(4, 6, 2)
    assert mask.astype(int).tolist() == [[1, 1, 0, 0]] * 3 + [[0, 0, 1, 1]] * 3


def test_dense_with_p1_g2_g2():
    report = check_block(IGCV3Block(32, 32, 6, groups=(2, 2)))
    assert report.dense and report.loose and not report.strict
    assert report.groups == (2, 2)
    # every (W1 branch, W2 branch) pair shares 192 / 4 = 48 intermediate channels
    assert report.counts.tolist() == [[48, 48], [48, 48]]
    assert report.super_channels == 4


def test_not_dense_without_p1():
    report = check_block(IGCV3Block(32, 32, 6, groups=(2, 2), p1=False))
    assert not report.dense and not report.loose and not report.strict
    assert report.counts.tolist() == [[96, 0], [0, 96]]


def test_strict_condition_for_widest_block():
    report = check_block(IGCV3Block(48, 48, 2, groups=(2, 2), strict=True))
    assert report.dense and report.loose and report.strict
    assert report.counts.shape == (2, 48) and (report.counts == 1).all()


@pytest.mark.parametrize("groups", [(2, 4), (4, 2), (4, 4)])
def test_table7_groupings_are_dense(groups):
    report = check_block(IGCV3Block(32, 32, 6, groups=groups))
    assert report.dense and report.loose
    assert report.super_channels == groups[0] * groups[1]


def test_wrong_permutation_detected():
    # P1 with 4 groups while W1 has 2 branches and W2 has 4: W2's first branch reads
    # channels of W1's first branch only
    block = IGCV3Block(32, 32, 6, groups=(2, 4))
    block.body[2].groups = 3                       # a shuffle that does not interleave W1
    report = check_block(block)
    assert not report.loose


def test_normal_form_and_dense_baselines():
    assert check_block(IGCV3Block(48, 48, 6, inverted=False)).dense
    assert check_block(MobileNetV2Block(16, 24, 6, 2)).dense
    assert check_block(InterleavedPointwise(64, 128, 4)).dense
    t1 = check_block(MobileNetV2Block(32, 16, 1))
    assert t1.dense and t1.loose is None       # a single pointwise conv: nothing to interleave


@pytest.mark.parametrize("name", igcv3_gluon.list_models("classification"))
def test_every_block_of_every_shipped_network_is_dense(name):
    reports = check_network(igcv3_gluon.get_model(name))
    assert reports, name
    assert all(r.dense for _, r in reports), [n for n, r in reports if not r.dense]
    grouped = [r for _, r in reports if max(r.groups) > 1]
    assert all(r.loose for r in grouped)
