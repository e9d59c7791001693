"""The systemd unit example in docs/ is one systemd accepts, and runs the daemon the way this README says."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "docs" / "examples" / "systemd" / "oort.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_serve_with_etc_and_data_and_stops_with_sigterm() -> None:
    unit = _unit()
    service = unit["Service"]
    command = service["ExecStart"].split()
    assert command[1:2] == ["serve"]
    assert command[command.index("--etc") + 1] == "/etc/oort"
    assert command[command.index("--data") + 1] == service["ReadWritePaths"] == "/var/lib/oort"
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "true"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # The example's binary path points at this environment's oort, which verify checks is executable.
    oort = Path(sys.executable).parent / "oort"
    unit = tmp_path / "oort.service"
    unit.write_text(UNIT.read_text().replace("/opt/oort/bin/oort", str(oort)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
