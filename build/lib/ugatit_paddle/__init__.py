"""U-GAT-IT (Kim et al., ICLR 2020) in PaddlePaddle, numerically faithful to the official PyTorch code."""

__version__ = "0.1.0"
