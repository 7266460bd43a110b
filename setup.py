"""recaffe: Caffe-compatible toolkit backed by PyTorch."""
from setuptools import setup, find_packages

setup(
    name="recaffe",
    version="0.1.0",
    description="Run Caffe recipes (prototxt, solvers, caffemodels, LMDBs) on PyTorch with Caffe's numbers",
    python_requires=">=3.9",
    packages=find_packages(include=["protos", "protos.*", "netspec", "netspec.*", "solver", "solver.*",
                                    "recaffe", "recaffe.*", "models", "models.*", "tools", "tools.*"]),
    package_data={"protos": ["caffe.proto"], "models": ["zoo/*/*"]},
    install_requires=[
        "torch==2.13.0",
        "numpy",
        "protobuf>=7.35",
        "lmdb",
        "pillow",
        "opencv-python-headless>=4.5,<5",   # image decode/resize/encode as Caffe's (netspec/data/image.py)
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
            "recaffe-train=tools.train:main",
            "recaffe-test=tools.test:main",
            "recaffe-time=tools.time:main",
            "recaffe-convert-imageset=tools.convert_imageset:cli",
            "recaffe-compute-image-mean=tools.compute_image_mean:cli",
            "recaffe-classify=tools.classify:cli",
            "recaffe-draw-net=tools.draw_net:cli",
            "recaffe-deploy-from-train-val=tools.deploy_from_train_val:cli",
            "recaffe-upgrade-net-proto-text=tools.upgrade_net_proto_text:cli",
            "recaffe-upgrade-solver-proto-text=tools.upgrade_solver_proto_text:cli",
            "recaffe-plot-training-log=tools.plot_training_log:cli",
            "recaffe-pycaffe=tools.pycaffe:main",
            "recaffe-demo=tools.demo:main",
        ],
    },
)
