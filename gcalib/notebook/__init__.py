"""Layer 4 — helpers for the notebook series.

Static figures (:mod:`~gcalib.notebook.figures`), widget explorers (:mod:`~gcalib.notebook.explorers`),
target-plan design (:mod:`~gcalib.notebook.target_design`), what a loss does with one batch
(:mod:`~gcalib.notebook.batch_plans`), the views the trainer draws (:mod:`~gcalib.notebook.dataset_views`),
encoder projections (:mod:`~gcalib.notebook.projections`), load-or-train run directories
(:mod:`~gcalib.notebook.run_directories`), committed result files (:mod:`~gcalib.notebook.saved_results`),
small numerical experiments (:mod:`~gcalib.notebook.analysis`) and the exercises' checks
(:mod:`~gcalib.notebook.exercises`).

Needs the ``notebooks`` extra (matplotlib, ipywidgets, seaborn, pandas, ...). May import every other layer;
nothing outside this package imports it. Import its modules explicitly
(``from gcalib.notebook import figures``); importing the package itself loads nothing heavy.
"""
