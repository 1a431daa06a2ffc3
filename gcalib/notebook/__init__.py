"""Layer 4 — helpers for the notebook series.

Figures, widget explorers, analysis helpers for teaching, run directories, and the exercises' checks.
Needs the ``notebooks`` extra (matplotlib, ipywidgets, seaborn, ...). May import every other layer;
nothing outside this package imports it. Import its modules explicitly
(``from gcalib.notebook import viz``); importing the package itself loads nothing heavy.
"""
