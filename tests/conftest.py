import os

import hypothesis
import jax

# Tests compare against PyTorch in float32 on the CPU.
jax.config.update("jax_platforms", "cpu")

hypothesis.settings.register_profile(
    "default", deadline=None, max_examples=25, derandomize=True, print_blob=True
)
hypothesis.settings.register_profile("thorough", deadline=None, max_examples=300)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
