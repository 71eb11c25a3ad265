"""File formats: project checkpoints (`checkpoint`), official PyTorch files read and written without PyTorch
(`torch_pickle`, `torch_writer`, `torchscript`, behind the restricted unpickler `safe_pickle`), and the official
weights <-> our networks (`official`, `official_keys`). Further checkpoint formats go here."""
