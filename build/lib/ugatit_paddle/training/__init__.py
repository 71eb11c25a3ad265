"""Training U-GAT-IT: the paper's objectives (`losses`), one optimisation step of the six networks (`ugatit`) and
the loop around it (`loop`: data, resume, logging, samples, checkpoints, signals, data parallel, callbacks), its
progress report (`progress`: a bar or plain log lines) and the one-run-per-output-folder lock (`run_lock`)."""
