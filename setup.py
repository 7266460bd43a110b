"""recaffe: Caffe-compatible toolkit backed by PyTorch."""
from setuptools import setup, find_packages

setup(
    name="recaffe",
    version="0.1.0",
    description="Run Caffe recipes (prototxt, solvers, caffemodels, LMDBs) on PyTorch with Caffe's numbers",
    python_requires=">=3.9",
    packages=find_packages(include=["protos", "protos.*", "netspec", "netspec.*", "solver", "solver.*",
                                    "recaffe", "recaffe.*", "models", "models.*", "tools", "tools.*"]),
    package_data={"protos": ["caffe.proto"]},
    install_requires=[
        "torch==2.13.0",
        "numpy",
        "protobuf>=7.35",
        "lmdb",
        "pillow",
        "h5py",
        "matplotlib",
    ],
    extras_require={
        "dev": ["pytest", "grpcio-tools"],
        "test": ["pytest"],
    },
    entry_points={
        "console_scripts": [
            "recaffe=tools.caffe:main",
        ],
    },
)
