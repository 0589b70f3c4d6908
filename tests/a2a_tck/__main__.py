"""``python -m tests.a2a_tck`` (``make a2a-tck``): see :mod:`tests.a2a_tck.harness`."""

from tests.a2a_tck.harness import main

raise SystemExit(main())
