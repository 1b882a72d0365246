from setuptools import find_packages, setup

setup(
    name="layered-gan",
    version="0.1.0",
    description="Unsupervised object segmentation with layered GANs (PerturbGAN, Labels4Free) on StyleGAN2",
    packages=find_packages(include=["layered_gan", "layered_gan.*", "cuda_ops"]),
    package_data={"cuda_ops": ["*.cu", "*.cuh", "*.cpp", "cpu/*.h", "cpu/*.cpp"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "ninja",
        "numpy",
        "click",
        "pillow",
        "lmdb",
        "scipy",
        "tensorboard",
        "tqdm",
    ],
    extras_require={"test": ["pytest", "opencv-python-headless"], "grabcut": ["opencv-python-headless"]},
)
