"""The lab: "pods" as network namespaces with real services, on one Linux host.

``topology`` builds namespaces, veths and routes; ``inventory`` is the saved description the
sensor reads for workload identity; ``services``/``client`` are the programs run inside pods;
``manager`` ties them together for ``stockade lab up|down|status|traffic``.
"""
