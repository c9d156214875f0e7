"""Benchmarks of the course's library and grader against what people would use instead.

Run with ``make bench`` (one BLAS thread). Prints markdown tables and writes them to
``bench/results.md``. Nothing here is a test: the figures are reported, never asserted.
"""
