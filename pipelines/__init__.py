"""End-to-end train / evaluate / predict pipelines (installed as `kerascv_suite.pipelines`).

A pipeline is a function taking one typed config and returning a result object; it never
imports click.
"""
