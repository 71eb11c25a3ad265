"""Inference: translating images (`translate`), exporting a generator for Paddle Inference (`export`) and the
generator in the form that is exported (`inference_generator`)."""
