"""Package discovery for the two source trees (everything else is in pyproject.toml).

``sessiond`` is a namespace package spread over ``server/`` (``sessiond.server``)
and ``client/`` (``sessiond.client``, ``sessiond.errors``, and the generated
``sessiond.v1``). setuptools' ``packages.find`` cannot map several roots, so the
mapping is built here.
"""

from setuptools import find_namespace_packages, setup

packages: list[str] = []
package_dir: dict[str, str] = {}
for root in ("server", "client"):
    for package in find_namespace_packages(root, include=["sessiond", "sessiond.*"]):
        packages.append(package)
        package_dir[package] = f"{root}/{package.replace('.', '/')}"

setup(packages=sorted(set(packages)), package_dir=package_dir)
