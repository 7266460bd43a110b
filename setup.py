"""recaffe: Caffe-compatible toolkit backed by PyTorch."""
from setuptools import setup, find_packages

_FOLDERS = ["protos", "netspec", "solver", "models", "tools"]


setup(
    name="recaffe",
    version="0.1.0",
    description="Run Caffe recipes (prototxt, solvers, caffemodels, LMDBs) on PyTorch with Caffe's numbers",
    python_requires=">=3.9",
    # One import root: the repository keeps the user's top-level folders, installed as recaffe.*
    # (recaffe/ is the pycaffe facade itself). Nothing else lands on a user's import path.
    packages=["recaffe", "recaffe.proto"] + [
        f"recaffe.{top}" + (f".{sub}" if sub else "") for top in _FOLDERS for sub in [""] + find_packages(top)],
    package_dir={"recaffe": "recaffe", **{"recaffe." + top: top for top in _FOLDERS}},
    package_data={"recaffe.protos": ["caffe.proto"], "recaffe.protos.forkschema": ["*.proto"],
                  "recaffe.models": ["zoo/*/*"]},
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
        "leveldb": ["plyvel"],          # Data layers and convert_imageset --backend leveldb
        # ONNX export (recaffe-export-onnx, recaffe.netspec.net.export): exporter + checker
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
    },
    entry_points={
        # every entry is the tool module's cli(): its error boundary (tools/_cli.py); tools/<name> runs the same
        "console_scripts": [
            "recaffe=recaffe.tools.caffe:cli",
            "recaffe-train=recaffe.tools.train:cli",
            "recaffe-test=recaffe.tools.test:cli",
            "recaffe-time=recaffe.tools.time:cli",
            "recaffe-convert-imageset=recaffe.tools.convert_imageset:cli",
            "recaffe-compute-image-mean=recaffe.tools.compute_image_mean:cli",
            "recaffe-classify=recaffe.tools.classify:cli",
            "recaffe-detect=recaffe.tools.detect:cli",
            "recaffe-draw-net=recaffe.tools.draw_net:cli",
            "recaffe-deploy-from-train-val=recaffe.tools.deploy_from_train_val:cli",
            "recaffe-upgrade-net-proto-text=recaffe.tools.upgrade_net_proto_text:cli",
            "recaffe-upgrade-solver-proto-text=recaffe.tools.upgrade_solver_proto_text:cli",
            "recaffe-plot-training-log=recaffe.tools.plot_training_log:cli",
            "recaffe-pycaffe=recaffe.tools.pycaffe:cli",
            "recaffe-demo=recaffe.tools.demo:cli",
            "recaffe-export-onnx=recaffe.tools.export_onnx:cli",
        ],
    },
)
