"""Test-only code that is more than a fixture: a TensorFlow tensor-bundle writer (`tensorbundle_writer`), a
float64 NumPy transcription of the TF U-GAT-IT networks (`tf_reference`), the processes a child started
(`processes`, from /proc), the test photos and where the astronaut's face is (`photos`) and the face search
measurement script (`face_detection_rates`). Tests import them as `helpers.<module>`; small shared helpers are
fixtures in conftest.py."""
