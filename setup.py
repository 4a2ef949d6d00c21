from setuptools import find_packages, setup

from cauldron import __version__ as version

with open("requirements.txt") as f:
	install_requires = [line.strip() for line in f if line.strip() and not line.startswith("#")]

setup(
	name="cauldron",
	version=version,
	description="Postgres-first data layer for Frappe and ERPNext: schemas, time-series, vectors and audit",
	author="Cauldron",
	author_email="dev@cauldron.invalid",
	packages=find_packages(exclude=["tests", "tests.*", "benchmarks"]),
	zip_safe=False,
	include_package_data=True,
	python_requires=">=3.10",
	install_requires=install_requires,
)
