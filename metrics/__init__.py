"""Metrics for Head3D: FID/KID (all/front/back splits), identity consistency and 3D consistency.

Entry point: metrics.metric_main.run_metrics(); CLI: scripts/calc_metrics.py; documentation: docs/metrics.md.
"""
