"""The `kcv` command line (installed as `kerascv_suite.apps`). Thin: parse, call, report."""
