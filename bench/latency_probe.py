#!/usr/bin/env python
"""Standalone latency probe: ``python bench/latency_probe.py -n 200 --json out.json``.

The logic lives in :mod:`kimp_fast.probe` (so ``kimp-fast probe`` works from an installed
package, where ``bench/`` does not exist); this file is the runnable script. Options:
``--help``; what the numbers mean: docs/PERFORMANCE.md, "Engine latency (probe)".
"""

from __future__ import annotations

import sys

from kimp_fast.probe import main

if __name__ == "__main__":
    sys.exit(main())
