"""MAD's six synthetic tasks (Poli et al. 2024, `athms/mad-lab`, mad/data/instances.py), one instance
at a time, as mad-lab generates them — written here from its definitions — with one difference:
every random draw comes from the `rng` given (mad-lab draws unseeded where no rng is passed, and
selective copying's blank positions from NumPy's global state), so a dataset is fixed by its seed.

Each returns (inputs, training targets, test targets), integer arrays of one length. Training
targets are the next token everywhere (mad-lab trains on the shifted inputs) for the recall
tasks; test targets are −100 except where the answer is determined: the value of a key already
seen, the copied tokens, the memorised values, the reconstructed sequence. Tokens at the top of the
vocabulary are special (copy prefix, padding, blank, insert, compression token) and noise tokens
come from their own range, below the specials, as in mad-lab.
"""
from __future__ import annotations

import numpy as np

IGNORE = -100


def _motif(rng: np.random.Generator, vocab: np.ndarray, size: int) -> tuple[int, ...]:
    """A uniformly drawn ordered tuple of `size` distinct tokens: what mad-lab's choice over all
    permutations of the vocabulary draws, without listing them (238k tuples at vocab 128)."""
    return tuple(int(t) for t in rng.choice(vocab, size=size, replace=False))


def in_context_recall(rng: np.random.Generator, *, vocab_size: int, seq_len: int, multi_query: bool = True,
                      noise_vocab_size: int = 0, frac_noise: float = 0.0):
    """Key-value pairs (keys from the lower half of the non-special vocabulary, values from the upper,
    one value per key per sequence), then a final probe of a key already shown. Test targets: the
    value wherever its key appeared before (multi-query) and the probe's value."""
    if not 0 <= frac_noise < 1:
        raise ValueError(f"frac_noise must lie in [0, 1), got {frac_noise!r}")
    copy_prefix = vocab_size - 1
    non_special = (vocab_size if multi_query else vocab_size - 1) - noise_vocab_size
    keys, values = np.arange(non_special // 2), np.arange(non_special // 2, non_special)
    noise = np.arange(non_special, non_special + noise_vocab_size)
    pairs = seq_len // 2
    never_noise = rng.integers(pairs)  # at least one pair is a key-value pair
    kv, inputs, targets, shown = {}, [], [], {}
    for i in range(pairs - 1):
        if frac_noise > 0 and i != never_noise and rng.random() < frac_noise:
            inputs += [int(t) for t in rng.choice(noise, size=2)]
            targets += [IGNORE, IGNORE]
            continue
        k = int(rng.choice(keys))
        v = kv.setdefault(k, int(rng.choice(values)))
        inputs += [k, v]
        targets += [IGNORE, v if (k in shown and multi_query) else IGNORE]
        shown[k] = v
    probe = int(rng.choice(list(shown)))
    inputs += ([] if multi_query else [copy_prefix]) + [probe, shown[probe]]
    targets += ([] if multi_query else [IGNORE]) + [IGNORE, shown[probe]]
    inputs = np.array(inputs)
    return inputs[:-1], inputs[1:], np.array(targets)[1:]


def fuzzy_in_context_recall(rng: np.random.Generator, *, vocab_size: int, seq_len: int, k_motif_size: int = 3,
                            v_motif_size: int = 3, multi_query: bool = True, noise_vocab_size: int = 0,
                            frac_noise: float = 0.0, is_training: bool = True):
    """Keys and values of 1 … k (v) adjacent tokens; at test the keys have the full motif size. A
    probe pair is placed at a random point and queried at the end; left-padded to the length."""
    copy_prefix = vocab_size - 1
    pad = vocab_size - 2 if not multi_query else vocab_size - 1
    non_special = (vocab_size - 2 if not multi_query else vocab_size - 1) - noise_vocab_size
    keys, values = np.arange(non_special // 2), np.arange(non_special // 2, non_special)
    noise = np.arange(non_special, non_special + noise_vocab_size)
    key_sizes = list(range(1, k_motif_size + 1)) if is_training else [k_motif_size]
    value_sizes = list(range(1, v_motif_size + 1))
    k_probe_size, v_probe_size = int(rng.choice(key_sizes)), int(rng.choice(value_sizes))
    k_probe, v_probe = _motif(rng, keys, k_probe_size), _motif(rng, values, v_probe_size)
    probe_size = k_probe_size + v_probe_size
    probe_at = rng.integers(seq_len - 2 * probe_size)
    kv, inputs, targets, shown, placed = {}, [], [], {}, False
    while len(inputs) < seq_len - probe_size - (k_motif_size + v_motif_size):
        k_size, v_size = int(rng.choice(key_sizes)), int(rng.choice(value_sizes))
        if len(inputs) >= probe_at and not placed:
            inputs += [*k_probe, *v_probe]
            targets += [IGNORE] * probe_size
            kv[k_probe], shown[k_probe], placed = v_probe, v_probe, True
            continue
        if frac_noise > 0 and rng.random() < frac_noise:
            inputs += [int(t) for t in rng.choice(noise, size=k_size + v_size)]
            targets += [IGNORE] * (k_size + v_size)
            continue
        k = _motif(rng, keys, k_size)
        if k == k_probe:
            v, placed = v_probe, True
        else:
            v = kv.setdefault(k, _motif(rng, values, v_size))
        inputs += [*k, *v]
        targets += [IGNORE] * len(k) + (list(v) if (k in shown and multi_query) else [IGNORE] * len(v))
        shown[k] = v
    inputs += ([] if multi_query else [copy_prefix]) + [*k_probe, *v_probe]
    targets += ([] if multi_query else [IGNORE]) + [IGNORE] * k_probe_size + list(v_probe)
    missing = seq_len + 1 - len(inputs)
    inputs, targets = [pad] * missing + inputs, [IGNORE] * missing + targets
    inputs = np.array(inputs)
    return inputs[:-1], inputs[1:], np.array(targets)[1:]


def memorization_map(vocab_size: int, seed: int = 12345) -> dict[int, int]:
    """The fixed key → value map every instance draws from (its own seed, as in mad-lab)."""
    generator = np.random.default_rng(seed)
    keys, values = np.arange(vocab_size // 2), np.arange(vocab_size // 2, vocab_size)
    generator.shuffle(keys), generator.shuffle(values)
    return {int(k): int(v) for k, v in zip(keys, values)}


def memorization(rng: np.random.Generator, *, vocab_size: int, seq_len: int, kv_map: dict[int, int]):
    """Pairs (key, insert token); the target at each insert token is the key's value in the fixed
    map, the same at training and test: the map must be learned into the weights."""
    insert = vocab_size - 1
    keys = list(kv_map)
    chosen = [keys[i] for i in rng.integers(len(keys), size=seq_len // 2)]
    inputs = np.array([token for k in chosen for token in (k, insert)])
    targets = np.array([t for k in chosen for t in (IGNORE, kv_map[k])])
    return inputs, targets, targets


def compression(rng: np.random.Generator, *, vocab_size: int, seq_len: int):
    """Random tokens ending in a compression token; an encoder compresses the sequence into its last
    position, a decoder reconstructs every token from it (the targets are the inputs, as mad-lab's)."""
    inputs = np.concatenate([rng.integers(vocab_size - 1, size=seq_len - 1), [vocab_size - 1]])
    return inputs, inputs.copy(), inputs.copy()


def selective_copying(rng: np.random.Generator, *, vocab_size: int, seq_len: int, num_tokens_to_copy: int):
    """Tokens to copy scattered among blanks, a copy token, then blanks where the tokens must be
    written in order; only those positions are scored, at training and test alike."""
    copy, blank = vocab_size - 1, vocab_size - 2
    if seq_len <= 2 * num_tokens_to_copy + 1:
        raise ValueError(f"seq_len must exceed 2 × num_tokens_to_copy + 1 = {2 * num_tokens_to_copy + 1}, got {seq_len}")
    blanks = seq_len - 2 * num_tokens_to_copy - 1
    to_copy = rng.integers(vocab_size - 2, size=num_tokens_to_copy)
    spread = np.insert(to_copy, rng.integers(0, num_tokens_to_copy, blanks), [blank] * blanks)
    inputs = np.concatenate([spread, [copy], [blank] * num_tokens_to_copy])
    targets = np.concatenate([[IGNORE] * (num_tokens_to_copy + blanks + 1), to_copy])
    return inputs, targets, targets
