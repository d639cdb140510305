"""Who owns an address: the one seam between network facts and workloads.

Sensor, firewall, quarantine and reports ask a :class:`Directory` (address -> :class:`Workload`:
namespace, name, labels, owner, node). Providers build one: the lab's inventory (``stockade.lab``),
a static file (``static.load``: Stockade's own list or ``kubectl get pods -o json``, for analysing
captures of a real cluster), and later the Kubernetes API.
"""

from stockade.identity.directory import Directory
from stockade.identity.model import Workload

__all__ = ["Directory", "Workload"]
