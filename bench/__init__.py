"""Benchmarks of the course's library and grader against what people would use instead.

Run with ``make bench`` or ``python -m bench [section...]``. Prints markdown tables and writes
them to ``bench/results.md``. Nothing here is a test: the figures are reported, never asserted.

Every figure is taken on one BLAS thread: importing this package sets the thread variables of
the BLAS libraries numpy may use to 1, before numpy is imported (they are read then), and the
processes the benchmarks start inherit them. The results' header shows the thread count numpy's
BLAS actually uses.
"""

import os

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))
