"""Tests of evolve.fitness's compiled flag-reader rule against its numpy form."""
import numpy as np
import pytest


def _numpy_flag_readers(tokens, lengths, table):
    """entry_flag_readers' rule with numpy masks (the kernel's reference)."""
    n, width = tokens.shape
    live = np.arange(width)[None, :] < lengths[:, None]
    eff = table[tokens] & live[:, :, None]
    branched_before = (np.cumsum(eff[:, :, 2], axis=1) - eff[:, :, 2]) > 0
    clean_write = eff[:, :, 1] & ~branched_before
    first_write = np.where(clean_write.any(axis=1), clean_write.argmax(axis=1), width)
    return eff[:, :, 0].any(axis=1) & (eff[:, :, 0].argmax(axis=1) <= first_write)


@pytest.mark.parametrize("seed", range(4))
def test_entry_flag_readers_kernel_equals_numpy(seed):
    """Check the compiled flag-reader rule against numpy's on random flag tables and genomes."""
    from evolve.fitness import entry_flag_readers
    rng = np.random.default_rng(seed)
    table = rng.random((30, 3)) < [0.2, 0.3, 0.15]
    tokens = rng.integers(0, 30, (500, 10))
    lengths = rng.integers(0, 12, 500)
    got = entry_flag_readers(tokens, lengths, table)
    want = _numpy_flag_readers(tokens, lengths, table)
    np.testing.assert_array_equal(got, want)
    assert 50 < got.sum() < 450
