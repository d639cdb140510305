"""Security regression tests: hostile inputs, leaks and bypasses, one module per area.

Every test here failed on the code before its fix (the review of issue 11 and later ones), so the
next security review starts from them. Keep new findings of that kind here, not in the pillar's tests.
"""
