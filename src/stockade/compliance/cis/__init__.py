"""CIS node benchmarks (Kubernetes, Docker) and custom checks: a small engine over check data.

loader     YAML benchmark and custom-check files -> model
node       the audited node: files under a root, processes from /proc or a capture
components which components run (or are declared), their flags and file paths
audits     facts gathered for a check (file stat, flags/config/env, documents, containers)
operators  eq, noteq, gt, gte, lt, lte, has, nothave, regex, valid_elements, bitmask
engine     checks -> Findings (PASS, FAIL, WARN, INFO, ERROR, NOT_APPLICABLE)
report     table rows, JSON and JUnit renderings
"""
