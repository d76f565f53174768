"""C nanoBragg's ``ran1`` uniform deviate, bit for bit.

``ran1`` is the Numerical Recipes "minimal standard" generator (Park-Miller, Schrage's
method) with a Bays-Durham shuffle.  Its state has two parts with different owners in C:

* ``idum``: the caller's seed variable (``misset_seed``, ``mosaic_seed``, ``seed``), passed by
  pointer and advanced in place;
* ``iy``/``iv``: the shuffle table, *static* inside ``ran1``, so one table is shared by every
  caller in the process.

``ran1`` (re)builds the table only when ``*idum <= 0`` or ``iy == 0`` (first call of the
process).  Every C seed is stored negated (``-mosaic_seed N`` -> ``-N``), so normally each phase
starts by reinitialising; a user passing a negative number (a positive ``idum``) instead
continues with the table the previous phase left behind, and a positive ``idum`` on the very
first call is replaced by 1.

:class:`Ran1` holds both parts.  Model C by keeping one instance for the whole process and
calling :meth:`Ran1.reseed` with the next seed variable's value when C switches to it:
``reseed`` replaces ``idum`` and keeps the table.
"""

from __future__ import annotations

import numpy as np

_IA = 16807
_IM = 2147483647
_AM = 1.0 / _IM
_IQ = 127773
_IR = 2836
_NTAB = 32
_NDIV = 1 + (_IM - 1) // _NTAB
_RNMX = 1.0 - 1.2e-7
_RNMX_F32 = float(np.float32(_RNMX))


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _schrage(idum: int) -> int:
    """One step of idum = IA * idum mod IM without overflow, as C does it."""
    k = _cdiv(idum, _IQ)
    idum = _IA * (idum - k * _IQ) - _IR * k
    return idum + _IM if idum < 0 else idum


class Ran1:
    """C's ``ran1``: a seed variable ``idum`` plus the (C-static) shuffle table ``iy``/``iv``.

    A new instance has an empty table (``iy == 0``), like a freshly started C process.
    Seeds are C ``long`` values in the range of a C ``int`` (as produced by ``-atoi``).
    """

    def __init__(self, idum: int) -> None:
        self.idum = int(idum)
        self.iy = 0
        self.iv = [0] * _NTAB

    def reseed(self, idum: int) -> None:
        """Switch to another C seed variable; the shared shuffle table is kept."""
        self.idum = int(idum)

    def next(self) -> float:
        """Next deviate in (0, 1): C's float32 return value, as a Python float."""
        if self.idum <= 0 or self.iy == 0:
            self.idum = 1 if -self.idum < 1 else -self.idum
            for j in range(_NTAB + 7, -1, -1):
                self.idum = _schrage(self.idum)
                if j < _NTAB:
                    self.iv[j] = self.idum
            self.iy = self.iv[0]
        self.idum = _schrage(self.idum)
        j = self.iy // _NDIV
        self.iy = self.iv[j]
        self.iv[j] = self.idum
        temp = float(np.float32(_AM * self.iy))
        return _RNMX_F32 if temp > _RNMX else temp
