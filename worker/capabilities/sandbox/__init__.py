"""``ctx.sandbox``: run untrusted code away from the worker.

Backends (``SKILLQ_SANDBOX``): ``bwrap`` (bubblewrap: namespaces, a read-only
system, a private work directory, no network, resource limits), ``subprocess``
(resource limits only, no isolation), ``none``, or ``module:factory``. The
default, ``auto``, is ``bwrap`` when it works on this host and ``none`` when
it does not.
"""

from .bwrap import BwrapSandbox
from .limits import Limits
from .select import select_sandbox
from .unisolated import SubprocessSandbox

__all__ = ["BwrapSandbox", "Limits", "SubprocessSandbox", "select_sandbox"]
