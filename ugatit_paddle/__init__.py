"""U-GAT-IT (Kim et al., ICLR 2020) in PaddlePaddle, numerically faithful to the official PyTorch code."""

# Pillow's decoders must be loaded before Paddle 2.6: after `import paddle` (2.6.2), Pillow 11 and 12 fail to
# decode every PNG ("codec configuration error when reading image file"; tests/test_packaging.py). Paddle 3.x does
# not need this, and it costs nothing there: every part of the project reads images with Pillow anyway.
import PIL.Image  # noqa: F401

__version__ = "0.1.0"
