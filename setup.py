"""igcv3-gluon: the reference MXNet/Gluon implementation of IGCV3 (Sun et al., BMVC 2018)."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _version():
    scope = {}
    with open(os.path.join(HERE, "igcv3_gluon", "version.py")) as f:
        exec(f.read(), scope)
    return scope["__version__"]


setup(
    name="igcv3-gluon",
    version=_version(),
    description="IGCV3: Interleaved Low-Rank Group Convolutions in MXNet/Gluon",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["igcv3_gluon", "igcv3_gluon.*", "symbols"]),
    python_requires=">=3.8",
    install_requires=[
        "numpy>=1.23,<1.24",
        "gluoncv==0.10.5.post0",
        "opencv-python-headless",
        "tqdm",
        "matplotlib",
        "scikit-learn",
        "pycocotools",
        # TensorBoard event files of every run (mxboard's last release is from 2018)
        "tensorboardX==2.6.5",
        # --config FILE in YAML
        "pyyaml",
        # imgclsmob's network definitions and model store: get_model(..., pretrained=True)
        # converts their published IGCV3 weights (and `convert imgclsmob`)
        "gluoncv2==0.0.64",
    ],
    extras_require={
        "cpu": ["mxnet==1.9.1"],
        "cu112": ["mxnet-cu112==1.9.1"],
        "onnx": ["onnx==1.14.1", "onnxruntime<1.20", "protobuf<4"],
        # the fastest CPU runtime and its INT8 quantizer (python -m igcv3_gluon.deploy openvino)
        "openvino": ["openvino==2026.4.1", "nncf==2.14.1"],
        # the second distributed engine; it compiles against the installed MXNet: install it
        # after MXNet, without build isolation, with HOROVOD_WITH_MXNET=1 (Makefile, README)
        "horovod": ["horovod==0.28.1"],
        # pytest < 9: pytest 9 renamed the node id that pytest-xdist's --dist loadgroup sets
        "test": ["pytest>=7,<9", "pytest-timeout", "pytest-xdist>=3", "ruff==0.17.6"],
    },
    entry_points={
        "console_scripts": [
            "igcv3-complexity=igcv3_gluon.complexity:main",
        ],
    },
)
