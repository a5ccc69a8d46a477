"""Maps the top-level `apps/` and `pipelines/` folders into the `kerascv_suite` namespace.

Everything else about the distribution is declared in pyproject.toml.
"""

from setuptools import find_packages, setup

MAPPED = {"apps": "kerascv_suite.apps", "pipelines": "kerascv_suite.pipelines"}

packages = find_packages(include=["kerascv_suite", "kerascv_suite.*"])
for folder, namespace in MAPPED.items():
    packages += [namespace + p[len(folder):] for p in find_packages(include=[folder, folder + ".*"])]

setup(packages=packages)
