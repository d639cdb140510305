"""Admission control: a Kubernetes validating webhook that keeps vulnerable and risky workloads out.

``review`` parses AdmissionReview requests, ``policy`` loads rules, ``criteria`` judges one workload,
``engine`` decides, ``server`` serves HTTPS, ``certs`` makes the serving certificate, ``manifest``
prints the ValidatingWebhookConfiguration and ``testing`` runs offline policy tests.
"""
