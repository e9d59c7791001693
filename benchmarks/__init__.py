"""Oort's benchmark harness: ``python -m benchmarks run [SCENARIO...] [--quick] [--out DIR]``.

Every scenario runs the real daemon (``python -m runtime serve``) or an in-process engine where stated, drives
it from a separate load-generator process on 127.0.0.1 with bounded message counts, runs its baseline in the
same invocation (alternating runs) and reports medians, min-max and the ratio Oort/baseline.
"""
