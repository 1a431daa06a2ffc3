"""pytest settings for the notebook series (run with ``--nbval-lax``, see the Makefile).

``make notebooks`` writes executed copies to ``notebooks/_executed/``; they must not be collected and
run a second time.
"""
collect_ignore_glob = ["_executed/*"]
