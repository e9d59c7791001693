"""Oort: a streaming-SQL rule engine on Trio, compatible with eKuiper's DDL, rule JSON, SQL and REST surface."""

from __future__ import annotations
