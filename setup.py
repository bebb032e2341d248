from setuptools import find_packages, setup

setup(
    name="irislib",
    version="0.1.0",
    description="Near-infrared iris image synthesis: VAE + denoising-diffusion hybrid sampling, Colab-first",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="GPL-2.0-only",
    python_requires=">=3.10",
    packages=find_packages(include=["irislib", "irislib.*"]),
    package_data={"irislib": ["checkpoints_manifest.json"]},  # a copy of the root manifest, for pip installs
    install_requires=[
        "torch>=2.1",          # never pinned exactly: Colab's preinstalled torch must be kept
        "numpy>=1.24",
        "pillow>=9.0",
        "tqdm>=4.60",
        "gdown>=5.1,<7",
        "safetensors>=0.4",
        "matplotlib>=3.5",     # report figures (preinstalled in Colab)
    ],
    extras_require={
        # MITRE BIQT-Iris's quality measures (its Python port, Apache-2.0): quality_report(..., backend="biqt").
        "biqt": ["iris-iqm>=1.1"],
        # Local Jupyter: JupyterLab 4 and Notebook 7 render only ipywidgets 8 (jupyterlab_widgets 3), so >=8.
        # Colab is not asked to take this extra: its front end renders only its own ipywidgets 7.7.1, and the
        # notebooks' Colab setup cell installs plain irislib, which needs no ipywidgets at all (irislib.notebook.ui
        # works with 7.7 and 8; without a widget front end the panel draws once as ordinary output).
        "notebooks": ["papermill>=2.4", "ipywidgets>=8", "ipykernel>=6", "nbformat>=5.7", "matplotlib>=3.5"],
        "test": ["pytest>=7", "nbval>=0.10", "papermill>=2.4", "ipykernel>=6", "nbformat>=5.7", "nbstripout>=0.6",
                 "matplotlib>=3.5", "ipywidgets>=7.7", "guided-diffusion-sdk>=1.0", "scipy>=1.8",
                 "pyeer>=0.5"],   # the field's EER/DET package, the peer of evaluation.verify.error_rates
    },
    entry_points={"console_scripts": ["irislib=irislib.cli:main"]},
    classifiers=["License :: OSI Approved :: GNU General Public License v2 (GPLv2)",
                 "Programming Language :: Python :: 3"],
)
