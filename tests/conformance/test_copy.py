"""The committed copy of eKuiper's conformance cases must equal ``../shared/conformance/cases.json``."""

from __future__ import annotations

from pathlib import Path

import pytest

COPY = Path(__file__).with_name("cases.json")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "cases.json"


def test_copy_is_present() -> None:
    assert COPY.is_file(), "tests/conformance/cases.json lets the suite run from a clone of the project alone"


@pytest.mark.skipif(not SHARED.is_file(), reason="no ../shared beside this checkout to compare with")
def test_copy_matches_shared() -> None:
    assert COPY.read_bytes() == SHARED.read_bytes(), (
        "tests/conformance/cases.json differs from ../shared/conformance/cases.json: copy the new file over"
    )
