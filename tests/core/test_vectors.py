"""A caller's vector is checked and normalised the same way whatever form it comes in: a float32
row takes a shorter path that must agree with the general one, bad values included."""

from __future__ import annotations

import numpy as np
import pytest

from semcache._errors import InvalidRequestError
from semcache.core.vectors import check_vector


def test_a_float32_row_normalises_exactly_as_any_other_form() -> None:
    rng = np.random.default_rng(3)
    for scale in (1e-30, 1e-3, 1.0, 1e3, 1e37):
        row = (rng.standard_normal(16) * scale).astype(np.float32)
        fast = check_vector(row, 16)
        general = check_vector(row.astype(np.float64).tolist(), 16)
        assert fast.dtype == np.float32 and np.array_equal(fast, general)
        assert abs(float(np.linalg.norm(fast.astype(np.float64))) - 1.0) < 1e-6
    row = np.ones(16, dtype=np.float32)
    assert check_vector(row, 16) is not row  # a copy: the caller's array is theirs to change


@pytest.mark.parametrize("value", [0.0, np.nan, np.inf, -np.inf])
def test_a_bad_float32_row_is_refused(value: float) -> None:
    with pytest.raises(InvalidRequestError):
        check_vector(np.full(16, value, dtype=np.float32), 16)
    with pytest.raises(InvalidRequestError):
        check_vector(np.ones(15, dtype=np.float32), 16)
