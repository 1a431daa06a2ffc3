"""``python -m gcalib`` — see :mod:`gcalib.cli`."""
from .cli import main

raise SystemExit(main())
