"""``python -m runtime`` is the ``oort`` command."""

from __future__ import annotations

from runtime.cli import main

raise SystemExit(main())
