"""Structure factor tables: HKL/Fdump files and the torch nearest/tricubic lookups."""

import math
import warnings

import numpy as np
import pytest
import torch

from engine.errors import InputError
from engine.physics import in_interpolation_range, lookup_nearest, lookup_tricubic
from engine.structure_factors import (
    StructureFactorTable,
    constant,
    read_fdump,
    read_hkl,
    write_fdump,
)

from reference import need_file, reference_log


def _table_from(values: np.ndarray, mins: tuple[int, int, int], default_F: float = 0.0):
    """A table whose grid values[i, j, k] sits at hkl = mins + (i, j, k), padding added."""
    padded = np.zeros(tuple(n + 1 for n in values.shape))
    padded[:-1, :-1, :-1] = values
    maxs = [m + n - 1 for m, n in zip(mins, values.shape, strict=True)]
    bounds = (mins[0], maxs[0], mins[1], maxs[1], mins[2], maxs[2])
    return StructureFactorTable(*bounds, padded, default_F, values.size)


@pytest.fixture(scope="module")
def random_table() -> StructureFactorTable:
    rng = np.random.default_rng(7)
    return _table_from(rng.uniform(1.0, 300.0, size=(13, 11, 15)), (-6, -4, -7), default_F=3.5)


def _tensors(*arrays, dtype=torch.float64):
    return [torch.as_tensor(a, dtype=dtype) for a in arrays]


# --- files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "name", "count", "bounds"),
    [
        ("hkl_nearest", "ortho.hkl", 54238, (-16, 16, -19, 19, -21, 21)),
        ("hkl_interpolate", "small.hkl", 4913, (-8, 8, -8, 8, -8, 8)),
    ],
)
def test_read_reference_hkl(case, name, count, bounds):
    path = need_file(f"inputs/{name}")
    table = read_hkl(path, default_F=0.0)
    log = reference_log(case)
    assert f"  {table.hkls} initialized hkls (all others =0)" in log
    assert table.hkls == count
    got = (table.h_min, table.h_max, table.k_min, table.k_max, table.l_min, table.l_max)
    assert got == bounds
    assert table.values.shape == tuple(r + 1 for r in table.ranges)
    data = np.loadtxt(path)
    hkl = data[:, :3].astype(int) - np.array(bounds[::2])
    np.testing.assert_array_equal(table.values[hkl[:, 0], hkl[:, 1], hkl[:, 2]], data[:, 3])
    assert np.count_nonzero(table.values) == count  # missing points and padding stay 0


def test_read_hkl_default_fill_and_padding(tmp_path):
    path = tmp_path / "two.hkl"
    path.write_text("  0 0 0  10.5\n\n 2 -1 1 20\n 2 -1 1 30\n")
    table = read_hkl(path, default_F=7.0)
    assert table.hkls == 3
    bounds = (table.h_min, table.h_max, table.k_min, table.k_max, table.l_min, table.l_max)
    assert bounds == (0, 2, -1, 0, 0, 1)
    assert table.values.shape == (4, 3, 3)
    assert table.values[0, 1, 0] == 10.5
    assert table.values[2, 0, 1] == 30.0  # a repeated hkl keeps the last F
    assert table.values[1, 0, 0] == 7.0
    assert not table.values[3].any() and not table.values[:, 2].any()
    assert not table.values[:, :, 2].any()


def test_read_hkl_errors(tmp_path):
    missing = tmp_path / "missing.hkl"
    with pytest.raises(ValueError, match="missing.hkl: cannot read"):
        read_hkl(missing)
    empty = tmp_path / "empty.hkl"
    empty.write_text("\n  \n")
    with pytest.raises(InputError, match="empty.hkl: no HKL entries"):
        read_hkl(empty)
    short = tmp_path / "short.hkl"
    short.write_text("1 2 3 4.0\n1 2 3\n")
    with pytest.raises(InputError, match="short.hkl: line 2: expected 4 values"):
        read_hkl(short)
    word = tmp_path / "word.hkl"
    word.write_text("1 2 3 4.0\n1 x 3 5\n")
    with pytest.raises(InputError, match=r"word.hkl: line 2: k = 'x' is not a number"):
        read_hkl(word)


def test_read_hkl_warns_on_non_integer_index(tmp_path):
    path = tmp_path / "frac.hkl"
    path.write_text("0 0 0 1\n1.5 0 0 2\n")
    with pytest.warns(UserWarning, match="frac.hkl: non-integer Miller indices .*line 2"):
        table = read_hkl(path)
    assert table.h_max == 1 and table.values[1, 0, 0] == 2.0


def test_fdump_byte_layout_and_round_trip(tmp_path, random_table):
    path = tmp_path / "Fdump.bin"
    write_fdump(random_table, path)
    raw = path.read_bytes()
    header = b"-6 6 -4 6 -7 7\n\f"
    assert raw.startswith(header)
    shape = (14, 12, 16)
    assert len(raw) == len(header) + 8 * math.prod(shape)
    h, k, l = 2, -1, 5  # noqa: E741
    offset = len(header) + 8 * (((h + 6) * shape[1] + (k + 4)) * shape[2] + (l + 7))
    assert np.frombuffer(raw[offset : offset + 8], "<f8")[0] == random_table.values[8, 3, 12]

    back = read_fdump(path, default_F=2.0)
    np.testing.assert_array_equal(back.values, random_table.values)
    assert back.ranges == random_table.ranges == (13, 11, 15)
    assert back.hkls == 13 * 11 * 15 and back.default_F == 2.0


def test_read_fdump_errors(tmp_path, random_table):
    with pytest.raises(InputError, match="nope.bin: cannot read"):
        read_fdump(tmp_path / "nope.bin")
    path = tmp_path / "cut.bin"
    write_fdump(random_table, path)
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(InputError, match="cut.bin: .* data bytes, expected"):
        read_fdump(path)
    path.write_bytes(b"1 2 3\n\f" + bytes(8))
    with pytest.raises(InputError, match="header"):
        read_fdump(path)


# --- nearest neighbour ---------------------------------------------------------------------


def test_nearest_matches_direct_indexing(random_table):
    t = random_table
    rng = np.random.default_rng(1)
    shape = (40, 50)
    ints = [rng.integers(lo - 2, hi + 3, size=shape) for lo, hi in ((-6, 6), (-4, 6), (-7, 7))]
    ints[0][0, :3] = (-6, 6, 7)  # the edges and one past
    fracs = [x + rng.uniform(-0.5, 0.5, size=shape) for x in ints]
    fracs[0][1, :4] = (-0.5, 0.5, 6.5, -6.5)  # ties: ceil(x - 0.5) rounds half down
    table_tensor = t.to_tensor(torch.float64, "cpu")
    for hkl in (ints, fracs):
        got = lookup_nearest(table_tensor, t, *_tensors(*hkl)).numpy()
        h0, k0, l0 = (np.ceil(x - 0.5).astype(int) for x in hkl)
        bounds = ((h0, t.h_min, t.h_max), (k0, t.k_min, t.k_max), (l0, t.l_min, t.l_max))
        inside = np.all([(x >= lo) & (x <= hi) for x, lo, hi in bounds], axis=0)
        expected = np.full(shape, t.default_F)
        expected[inside] = t.values[h0[inside] + 6, k0[inside] + 4, l0[inside] + 7]
        np.testing.assert_array_equal(got, expected)
        assert 0 < inside.sum() < inside.size


def test_nearest_constant_and_float32(random_table):
    h = torch.tensor([0.2, 100.0, -3.0])
    assert lookup_nearest(torch.zeros(1, 1, 1), constant(4.0), h, h, h).tolist() == [4.0] * 3
    f32 = lookup_nearest(random_table.to_tensor(torch.float32, "cpu"), random_table, h, h, h)
    f64 = lookup_nearest(random_table.to_tensor(torch.float64, "cpu"), random_table, h, h, h)
    assert f32.dtype == torch.float32
    np.testing.assert_allclose(f32.numpy(), f64.numpy(), rtol=1e-7)


# --- tricubic --------------------------------------------------------------------------------


def _polint(xa, ya, x):
    """C polint, transcribed from the 4-point Lagrange formula."""
    total = 0.0
    for i in range(4):
        term = 1.0
        denominator = 1.0
        for j in range(4):
            if j != i:
                term *= x - xa[j]
                denominator *= xa[i] - xa[j]
        total += term * ya[i] / denominator
    return total


def _polin3_scalar(table, h, k, l):  # noqa: E741
    """C polin3 on the 4x4x4 neighbourhood of (h, k, l): along l, then k, then h."""
    nodes = [[math.floor(x) + d for d in (-1, 0, 1, 2)] for x in (h, k, l)]
    mins = (table.h_min, table.k_min, table.l_min)
    along_k = []
    for hi in nodes[0]:
        along_l = []
        for ki in nodes[1]:
            ya = [table.values[hi - mins[0], ki - mins[1], li - mins[2]] for li in nodes[2]]
            along_l.append(_polint([float(x) for x in nodes[2]], ya, l))
        along_k.append(_polint([float(x) for x in nodes[1]], along_l, k))
    return _polint([float(x) for x in nodes[0]], along_k, h)


def _random_inside(rng, table, n):
    bounds = zip((table.h_min, table.k_min, table.l_min), table.ranges, strict=True)
    return [rng.uniform(lo + 2, lo + r - 3, size=n) for lo, r in bounds]


def test_tricubic_equals_scalar_polin3(random_table):
    rng = np.random.default_rng(2)
    h, k, l = _random_inside(rng, random_table, 150)  # noqa: E741
    h[:3] = (-4.0, 4.0, 0.5)  # boundary points and an integer node
    got = lookup_tricubic(
        random_table.to_tensor(torch.float64, "cpu"), random_table, *_tensors(h, k, l)
    ).numpy()
    expected = [_polin3_scalar(random_table, *p) for p in zip(h, k, l, strict=True)]
    # Same operations in the same order on the same doubles: bit-identical.
    np.testing.assert_array_equal(got, expected)


def test_tricubic_reproduces_cubic_polynomial_and_grid_values():
    def cubic(h, k, l):  # noqa: E741
        return 50 + 0.3 * h**3 - 2 * h * k + 0.7 * k**3 * l - 0.05 * (h * k * l) ** 2 + l**2

    grid = np.meshgrid(*(np.arange(-7, 8),) * 3, indexing="ij")
    table = _table_from(cubic(*grid), (-7, -7, -7))
    table_tensor = table.to_tensor(torch.float64, "cpu")
    rng = np.random.default_rng(3)
    points = [x.reshape(20, 10) for x in _random_inside(rng, table, 200)]
    got = lookup_tricubic(table_tensor, table, *_tensors(*points))
    assert got.shape == (20, 10)
    np.testing.assert_allclose(got.numpy(), cubic(*points), rtol=1e-11, atol=1e-9)
    nodes = [rng.integers(-5, 6, size=50).astype(float) for _ in range(3)]
    np.testing.assert_array_equal(
        lookup_tricubic(table_tensor, table, *_tensors(*nodes)).numpy(), cubic(*nodes)
    )


def test_tricubic_float32_agrees_with_float64(random_table):
    rng = np.random.default_rng(4)
    points = [x.astype(np.float32) for x in _random_inside(rng, random_table, 2000)]
    # large indices: shift a copy of the table far from the origin
    far = StructureFactorTable(
        90, 102, 80, 90, -107, -93, random_table.values, random_table.default_F, 1
    )
    for table, offset in ((random_table, (0, 0, 0)), (far, (96, 84, -100))):
        pts = [p + np.float32(o) for p, o in zip(points, offset, strict=True)]
        f64 = lookup_tricubic(table.to_tensor(torch.float64, "cpu"), table, *_tensors(*pts))
        f32 = lookup_tricubic(
            table.to_tensor(torch.float32, "cpu"), table, *_tensors(*pts, dtype=torch.float32)
        )
        assert f32.dtype == torch.float32
        assert in_interpolation_range(table, *_tensors(*pts)).all()
        np.testing.assert_allclose(f32.numpy(), f64.numpy(), rtol=0, atol=1e-6 * 300)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_interpolation_range_boundaries(random_table, dtype):
    t = random_table  # h in [-6, 6]: interpolation needs -4 <= h <= 4
    eps = 1e-3
    h = torch.tensor([-4.0, 4.0, -4.0 - eps, 4.0 + eps, 0.0, 0.0, 0.0, 0.0], dtype=dtype)
    k = torch.tensor([0.0, 0.0, 0.0, 0.0, -2.0, 4.0, 0.0, 0.0], dtype=dtype)
    l = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -5.0 - eps, 5.0], dtype=dtype)  # noqa: E741
    inside = in_interpolation_range(t, h, k, l)
    assert inside.tolist() == [True, True, False, False, True, True, False, True]
    got = lookup_tricubic(t.to_tensor(dtype, "cpu"), t, h, k, l)
    assert (got[~inside] == t.default_F).all()
    assert torch.isfinite(got).all()
    assert not in_interpolation_range(constant(1.0), h, k, l).any()
    assert (lookup_tricubic(torch.zeros(1, 1, 1), constant(1.0), h, k, l) == 1.0).all()


def test_lookups_survive_nan(random_table):
    h = torch.tensor([float("nan"), 0.0])
    table_tensor = random_table.to_tensor(torch.float64, "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        near = lookup_nearest(table_tensor, random_table, h, h, h)
        lookup_tricubic(table_tensor, random_table, h, h, h)
    assert near[0] == random_table.default_F


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(random_table):
    """Nearest look-ups agree exactly; tricubic ones within the rounding of their sum of 64
    weighted table values (64 eps of the table's largest |F|: the GPU contracts multiply-adds
    where the CPU does not, and an interpolated value far below the table's scale keeps the
    terms' absolute rounding: 3.8e-6 at |F| = 1.95 seen in float32 on an H200)."""
    rng = np.random.default_rng(5)
    points = _random_inside(rng, random_table, 10_000)
    scale = float(np.abs(random_table.values).max())
    for dtype in (torch.float32, torch.float64):
        cpu = _tensors(*points, dtype=dtype)
        gpu = [x.cuda() for x in cpu]
        for lookup, atol in (
            (lookup_nearest, 0.0),
            (lookup_tricubic, 64 * torch.finfo(dtype).eps * scale),
        ):
            a = lookup(random_table.to_tensor(dtype, "cpu"), random_table, *cpu)
            b = lookup(random_table.to_tensor(dtype, "cuda"), random_table, *gpu)
            torch.testing.assert_close(b.cpu(), a, rtol=0.0, atol=atol)
