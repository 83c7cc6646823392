"""The finite groups of the state-tracking tasks, as Cayley tables: the cyclic groups Z_m, the
alternating group A_5 and the symmetric group S_5 (arXiv 2404.08819 "The Illusion of State in
State-Space Models" and the word-problem suite of `jopetty/word-problem`: Z_m is abelian — tracking it
is counting — while A_5 and S_5 are non-abelian, A_5 the smallest non-solvable group: its word problem
is NC¹-complete, beyond any fixed-depth circuit, hence beyond a diagonal linear recurrence of bounded
depth).

A group is its elements in a fixed order and `table[a, b]` = the index of a·b, "a, then b": for
permutations (a·b)(i) = b(a(i)), each permutation a tuple of images.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

import torch

GROUP_NAMES = ("Z<m> (e.g. Z5)", "A5", "S5")


@dataclass(frozen=True)
class Group:
    name: str
    elements: tuple
    table: torch.Tensor  # (n, n) long: table[a, b] = index of a·b
    abelian: bool

    @property
    def order(self) -> int:
        return len(self.elements)

    def identity(self) -> int:
        return next(i for i in range(self.order) if bool((self.table[i] == torch.arange(self.order)).all()))

    def prefix_products(self, words: torch.Tensor) -> torch.Tensor:
        """(B, L) element indices → (B, L) indices of g_1·g_2·…·g_t for every t."""
        state = words[:, 0]
        states = [state]
        for t in range(1, words.shape[1]):
            state = self.table[state, words[:, t]]
            states.append(state)
        return torch.stack(states, 1)


def compose(a: tuple, b: tuple) -> tuple:
    """a, then b: (a·b)(i) = b(a(i))."""
    return tuple(b[a[i]] for i in range(len(a)))


def is_even(permutation: tuple) -> bool:
    inversions = sum(1 for i, j in itertools.combinations(range(len(permutation)), 2) if permutation[i] > permutation[j])
    return inversions % 2 == 0


def _cayley(name: str, elements: list, product, abelian: bool) -> Group:
    index = {element: i for i, element in enumerate(elements)}
    table = torch.tensor([[index[product(a, b)] for b in elements] for a in elements], dtype=torch.long)
    return Group(name, tuple(elements), table, abelian)


def group(name: str) -> Group:
    """The group of a name: Z<m> for m ≥ 2 (Z2 is parity), A5, S5 — built once per process (S5's
    Cayley table is 14,400 compositions; every state-tracking config and task asks for it)."""
    if not isinstance(name, str):
        raise ValueError(f"unknown group {name!r}; valid: {', '.join(GROUP_NAMES)}")
    return _built(name)


@functools.lru_cache(maxsize=32)
def _built(name: str) -> Group:
    cyclic = re.fullmatch(r"Z(\d+)", str(name))
    if cyclic and int(cyclic.group(1)) >= 2:
        m = int(cyclic.group(1))
        return _cayley(name, list(range(m)), lambda a, b: (a + b) % m, abelian=True)
    if name in ("A5", "S5"):
        permutations = sorted(itertools.permutations(range(5)))
        elements = [p for p in permutations if is_even(p)] if name == "A5" else permutations
        return _cayley(name, elements, compose, abelian=False)
    raise ValueError(f"unknown group {name!r}; valid: {', '.join(GROUP_NAMES)}")
