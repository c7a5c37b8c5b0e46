"""Benchmarks of napari-segnet: run each as ``python -m benchmarks.<name> --help`` from the repository root.

Shared parts: :mod:`.simulated_user` (the one simulated person: which tile it corrects, how it paints),
:mod:`.forest_peer` (the peer every network is compared with: the product's own pixel forest), :mod:`.records`
(results as JSON records with machine and date in ``benchmarks/results/``) and :mod:`.tables` (the docs' tables,
generated from those records).
"""
