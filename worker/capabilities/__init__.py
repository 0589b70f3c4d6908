"""Implementations of the capabilities a runtime attaches to a ``RunContext``
(calls to other agents; discovery, workspaces and sandboxes as they arrive).

Their interfaces live in :mod:`worker.interface.capabilities` and
:mod:`worker.interface.a2a`, so skill code depends on behaviour, not on these.
"""
