"""Who owns an address: the one seam between network facts and workloads.

Sensor, firewall, quarantine and reports ask a :class:`Directory` (address -> :class:`Workload`:
namespace, name, labels, owner, node, image digests). Providers build one: the lab's inventory
(``stockade.lab``), a static file (``static.load``: Stockade's own list or ``kubectl get pods -o
json``, for analysing captures of a real cluster), and the Kubernetes API (``kubeapi``: listed and
watched, the directory updated in place). ``sources.opened`` picks one by name.
"""

from stockade.identity.directory import Directory
from stockade.identity.model import Workload

__all__ = ["Directory", "Workload"]
