"""Readers and writers of other programs' weight files (TensorFlow TensorBundle checkpoints, PaddleGAN
`.pdparams`), each turning a foreign file into this project's state dicts without executing anything from it."""
