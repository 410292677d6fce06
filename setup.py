"""Installs the ad & creative ranking packages. Dependencies are pinned in requirements/ (see BUILD.md)."""
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent


def _pins():
    lines = (HERE / "requirements" / "tfx116.txt").read_text().splitlines()
    return [l.strip() for l in lines if l.strip() and not l.startswith("#") and not l.startswith("pytest")]


setup(
    name="adcreative-ranking",
    version="0.1.0",
    description="Joint ad & creative ranking (JAC / Peri-CR) on TFX, with a ground-truth click simulator",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.11",
    py_modules=["features"],
    packages=find_packages(include=[
        "feature_specs", "simulator*", "trainer*", "transform*", "tfx_pipeline*", "serving*", "creative_metrics*",
        "experiments*"]),
    package_data={"serving": ["config/*"], "feature_specs": ["*.json"]},
    install_requires=_pins(),
    extras_require={"test": ["pytest==8.0.0"]},
    entry_points={"console_scripts": [
        "adcr-simulate=simulator.cli:main",
        "adcr-pipeline=tfx_pipeline.local_runner:main",
        "adcr-serve=serving.demo:main",
        "adcr-experiment=experiments.run:main",
    ]},
)
