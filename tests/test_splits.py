"""Scaffold / random splits: the reference's semantics, determinism, the raw-vs-canonical quirk."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

from gnnpretrain.chem import MoleculeNet
from gnnpretrain.splits import (
    canonical_smiles,
    generate_scaffold,
    random_scaffold_split,
    random_split,
    scaffold_split,
    split_dataset,
)


@pytest.fixture(scope="module")
def bbbp(data_dir, cache):
    return MoleculeNet(data_dir, "bbbp", cache=cache)


@pytest.fixture(scope="module")
def clintox(data_dir, cache):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MoleculeNet(data_dir, "clintox", cache=cache)


def _check_partition(split, n):
    train, valid, test = split
    assert len(train) + len(valid) + len(test) == n
    assert sorted(train + valid + test) == list(range(n))


# A toy set with known scaffolds: benzene ring (4 molecules), pyridine (2), cyclohexane (2),
# acyclic molecules have the empty scaffold "" (2).
TOY = [
    "Cc1ccccc1",  # 0 benzene
    "CCO",  # 1 acyclic
    "Cc1ccncc1",  # 2 pyridine
    "Oc1ccccc1",  # 3 benzene
    "CC1CCCCC1",  # 4 cyclohexane
    "Nc1ccccc1",  # 5 benzene
    "CCN",  # 6 acyclic
    "Oc1ccncc1",  # 7 pyridine
    "c1ccccc1Cl",  # 8 benzene
    "OC1CCCCC1",  # 9 cyclohexane
]


def test_scaffold_split_follows_the_reference_ordering():
    # groups sorted by (size, first index) descending: benzene[0,3,5,8], cyclohexane[4,9],
    # pyridine[2,7], acyclic[1,6]. Train cutoff 0.6*10=6: benzene (4) fits, cyclohexane (4+2=6) fits,
    # pyridine would pass → valid (cutoff 0.8*10=8: 6+0+2=8 fits), acyclic → test.
    train, valid, test = scaffold_split(TOY, 0.6, 0.2, 0.2)
    assert train == [0, 3, 5, 8, 4, 9]
    assert valid == [2, 7]
    assert test == [1, 6]


def test_scaffold_split_on_bbbp_is_deterministic_and_keeps_groups_whole(bbbp):
    smiles = bbbp.smiles
    a = scaffold_split(smiles)
    assert a == scaffold_split(list(smiles))
    _check_partition(a, len(smiles))
    assert [len(p) for p in a] == [1631, 204, 204]
    assert len(a[0]) <= 0.8 * len(smiles)
    scaf = [generate_scaffold(s) for s in smiles]
    owner = {}
    for part, idx in enumerate(a):
        for i in idx:
            assert owner.setdefault(scaf[i], part) == part, f"scaffold {scaf[i]!r} spans two splits"


def test_bbbp_split_uses_canonical_smiles_like_the_reference(bbbp):
    raw = bbbp.smiles
    canon = [canonical_smiles(s) for s in raw]
    differ = [i for i, (r, c) in enumerate(zip(raw, canon)) if generate_scaffold(r) != generate_scaffold(c)]
    assert len(differ) == 11  # the reference notes: 11 BBBP molecules are affected
    quirk = split_dataset(bbbp, method="scaffold")
    assert quirk == scaffold_split(canon)
    assert quirk != scaffold_split(raw)
    assert split_dataset(raw, "bbbp") == quirk  # a SMILES list plus the name does the same


def test_clintox_canonical_other_datasets_raw(clintox, bbbp):
    canon = [canonical_smiles(s) for s in clintox.smiles]
    differ = sum(generate_scaffold(r) != generate_scaffold(c) for r, c in zip(clintox.smiles, canon))
    assert differ == 13  # the reference notes: 13 ClinTox molecules are affected
    assert split_dataset(clintox) == scaffold_split(canon)
    # the same SMILES split under a raw-SMILES dataset's name follow the raw scaffolds
    raw = bbbp.smiles
    for name in ("tox21", "hiv", "muv", "sider", "bace"):
        assert split_dataset(raw, name) == scaffold_split(raw)
    assert split_dataset(raw, "toxcast") == split_dataset(raw, "bbbp") != scaffold_split(raw)


def _reference_random_split(n, seed, ft=0.8, fv=0.1):
    # the reference's procedure, written out: global random seeded, shuffle, int() cut points
    random.seed(seed)
    idx = list(range(n))
    random.shuffle(idx)
    a, b = int(ft * n), int(fv * n) + int(ft * n)
    return idx[:a], idx[a:b], idx[b:]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_random_split_matches_reference_semantics(seed):
    got = random_split(1513, seed=seed)
    assert got == _reference_random_split(1513, seed)
    _check_partition(got, 1513)
    assert [len(p) for p in got] == [1210, 151, 152]


def test_random_split_seeds_differ_and_do_not_touch_global_state():
    random.seed(123)
    before = random.random()
    random.seed(123)
    random_split(100, seed=0)
    assert random.random() == before
    assert random_split(100, seed=0) != random_split(100, seed=1)


def test_random_scaffold_split_semantics(bbbp):
    smiles = bbbp.smiles
    a = random_scaffold_split(smiles, seed=3)
    assert a == random_scaffold_split(smiles, seed=3)
    assert a != random_scaffold_split(smiles, seed=4)
    _check_partition(a, len(smiles))
    n = len(smiles)
    assert len(a[1]) <= int(np.floor(0.1 * n)) and len(a[2]) <= int(np.floor(0.1 * n))
    # same order as the reference's rng.permutation over the list of scaffold groups
    groups = {}
    for i, s in enumerate(smiles):
        groups.setdefault(generate_scaffold(s), []).append(i)
    sets = np.empty(len(groups), dtype=object)
    sets[:] = list(groups.values())
    perm = np.random.RandomState(3).permutation(sets)
    valid, test, train = [], [], []
    for g in perm:
        if len(valid) + len(g) <= int(np.floor(0.1 * n)):
            valid.extend(g)
        elif len(test) + len(g) <= int(np.floor(0.1 * n)):
            test.extend(g)
        else:
            train.extend(g)
    assert a == (train, valid, test)


def test_split_errors():
    with pytest.raises(ValueError, match=r"fractions must sum to 1.*\(0.8, 0.1, 0.2\)"):
        scaffold_split(TOY, 0.8, 0.1, 0.2)
    with pytest.raises(ValueError, match="non-negative"):
        random_split(10, 1.2, -0.1, -0.1)
    with pytest.raises(ValueError, match="left the train split empty"):
        scaffold_split(["c1ccccc1C", "c1ccccc1O", "c1ccccc1N"])  # one group of 3 > 0.8 * 3 → test
    with pytest.raises(ValueError, match="left the valid split empty"):
        random_split(5)  # int(0.1 * 5) == 0
    with pytest.raises(ValueError, match=r"unknown dataset name 'scaffold' \(did you mean method='scaffold'\?\)"):
        split_dataset(TOY, "scaffold")
    with pytest.raises(ValueError, match="unknown split method 'stratified'"):
        split_dataset(TOY, "tox21", method="stratified")
    with pytest.raises(ValueError, match="needs the dataset name"):
        split_dataset(TOY)
    with pytest.raises(ValueError, match="cannot compute a scaffold for SMILES 'C1CC'"):
        scaffold_split(["C1CC"] * 10)
