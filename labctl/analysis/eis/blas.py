"""Run small dense linear algebra on one BLAS thread.

The EIS matrices are small (tens to a few hundred rows). A multi-threaded
OpenBLAS gains nothing on them, and on a busy machine its threads spin and wait
for each other: a 162 x 103 SVD took 1 s with 2 threads under load against 8 ms
on one. `threadpoolctl` (the library scikit-learn uses for this) limits the
thread pools for the duration of a call; without it the call runs unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

_controller: Any = None
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def one_blas_thread():
    global _controller
    if _controller is None:
        try:
            import scipy.linalg  # noqa: F401  (load scipy's BLAS before looking for it)
            import scipy.optimize  # noqa: F401
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    ctx = _controller.limit(limits=1, user_api="blas") if _controller else nullcontext()
    with ctx:
        yield


def single_threaded(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
