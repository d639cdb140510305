"""Runtime protection: what runs inside workloads.

- :mod:`container`: a lab pod's service run from an image root filesystem, with its own mount, PID
  and UTS namespaces and a cgroup v2 directory under ``stockade.slice`` (so processes can be told
  apart by workload), joined to the pod's network namespace;
- :mod:`image`: the executables of an image's root filesystem (path -> sha256), what zero-drift
  allows;
- :mod:`procevents`: process events (fork, exec, exit) from the kernel's process connector;
- :mod:`proc`: what ``/proc`` says about a process (cgroup, executable, hash, command line);
- :mod:`profile`: process profiles as policy as code (YAML: export, apply, diff);
- :mod:`suspicious`: the built-in list of suspicious behaviour;
- :mod:`monitor`: the decisions (learn, alert, kill) and the events they raise;
- :mod:`execgate`: refusing an exec before it runs (fanotify permission events) in Protect;
- :mod:`filegate`: opens of sensitive paths for writing reported, denied in Protect.
"""
