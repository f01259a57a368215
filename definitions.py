"""Dagster entry point: every asset, resource, sensor and schedule is assembled here.

The engine lives in `mnc_core` (no Dagster imports); `mnc_assets` wraps it in thin
assets and `mnc_resources` declares the resources once. Until the asset issue
lands this is an empty but valid `Definitions`.
"""

import dagster as dg

defs = dg.Definitions()
