"""Inference: translating images (`translate`), exporting a generator for Paddle Inference (`export`) or ONNX
(`onnx`, with an ONNX Runtime runner), and the generator in the form that is exported (`inference_generator`)."""
