"""Package discovery for the folders pyproject.toml maps into the sfteval namespace (everything else is there).

trainer/, probes/ and suites/ install as sfteval.trainer, sfteval.probes and sfteval.suites; every package below a
mapped folder is found here, so adding a probe or an engine folder needs no edit of the packaging.
"""

from setuptools import find_packages, setup

MAPPED = {
    "sfteval": "sfteval",
    "sfteval.trainer": "trainer",
    "sfteval.probes": "probes",
    "sfteval.suites": "suites",
}

setup(
    packages=[
        name
        for root, folder in MAPPED.items()
        for name in (root, *(f"{root}.{package}" for package in find_packages(folder)))
    ]
)
