"""Labels4Free's tools (Abdal et al. 2021) around a trained run or its pretrained StyleGAN2: samples and
projected real-image masks (`samples.py`), the layer analyses that choose the alpha network's start and the
background generator's zeroed layer (`analysis.py`), and their commands (`cli.py`). The networks are in
`networks/alpha_network.py`, the training objective in `training/objectives/labels4free.py`.
"""
