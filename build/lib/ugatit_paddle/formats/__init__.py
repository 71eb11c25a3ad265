"""File formats: project checkpoints (`checkpoint`); official PyTorch files read and written without PyTorch
(`torch_pickle`, `torch_writer`, `torchscript`, behind the restricted unpickler `safe_pickle`) and the official
weights <-> our networks (`official`, `official_keys`); the official TensorFlow code's checkpoints
(`tensorbundle`, `tf`) and PaddleGAN's `.pdparams` (`paddlegan`). No reader executes anything from a file."""
