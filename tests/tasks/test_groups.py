"""The groups of the state-tracking tasks (tasks/groups.py) against brute-force composition."""
import functools
import itertools
import random

import pytest
import torch

from seqbench.tasks.groups import compose, group, is_even


@pytest.mark.parametrize("name,order,abelian", [("Z2", 2, True), ("Z5", 5, True), ("Z12", 12, True), ("A5", 60, False), ("S5", 120, False)])
def test_each_group_has_its_order_and_its_table_is_a_group_law(name, order, abelian):
    g = group(name)
    assert g.order == order and g.table.shape == (order, order) and g.abelian == abelian
    assert bool((g.table == g.table.T).all()) == abelian  # commutative exactly when abelian
    e = g.identity()
    assert bool((g.table[e] == torch.arange(order)).all()) and bool((g.table[:, e] == torch.arange(order)).all())
    for row in g.table:  # a Latin square: every element has an inverse and cancels
        assert sorted(row.tolist()) == list(range(order))
    rng = random.Random(0)
    for _ in range(300):  # associativity on random triples
        a, b, c = (rng.randrange(order) for _ in range(3))
        assert g.table[g.table[a, b], c] == g.table[a, g.table[b, c]]


def test_permutation_products_are_composition_of_tuples():
    for name in ("A5", "S5"):
        g = group(name)
        index = {p: i for i, p in enumerate(g.elements)}
        for a, b in itertools.islice(itertools.product(g.elements, repeat=2), 0, None, 97):
            assert g.table[index[a], index[b]] == index[tuple(b[a[i]] for i in range(5))]
    a5 = group("A5")
    assert all(is_even(p) for p in a5.elements) and len(set(a5.elements)) == 60
    assert compose((1, 2, 0, 3, 4), (1, 0, 2, 3, 4)) == (0, 2, 1, 3, 4)  # a, then b


@pytest.mark.parametrize("name", ["Z7", "A5", "S5"])
def test_prefix_products_equal_a_brute_force_fold(name):
    g = group(name)
    words = torch.randint(g.order, (4, 23), generator=torch.Generator().manual_seed(1))
    states = g.prefix_products(words)
    if name.startswith("Z"):
        expected = words.cumsum(1) % 7
    else:
        index = {p: i for i, p in enumerate(g.elements)}
        expected = torch.tensor([[index[functools.reduce(compose, [g.elements[i] for i in row[: t + 1].tolist()])]
                                  for t in range(words.shape[1])] for row in words])
    assert torch.equal(states, expected)


def test_an_unknown_group_names_the_valid_ones():
    for bad in ("Z1", "A4", "D5", "S6"):
        with pytest.raises(ValueError, match=r"unknown group .*; valid: Z<m> \(e.g. Z5\), A5, S5"):
            group(bad)
