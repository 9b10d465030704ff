import os

# Eight simulated CPU devices, so that tests/test_sharded.py can build 2-D meshes
# (data x model) in this process. XLA reads the flag when jax first creates its CPU
# backend, so it is set before jax is imported; a device count the caller already put in
# XLA_FLAGS wins. On one device nothing else changes: unsharded arrays stay on device 0.
_DEVICES_FLAG = "--xla_force_host_platform_device_count"
if _DEVICES_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_DEVICES_FLAG}=8".strip()

import hypothesis  # noqa: E402  (after XLA_FLAGS)
import jax  # noqa: E402

# Tests compare against PyTorch in float32 on the CPU.
jax.config.update("jax_platforms", "cpu")

hypothesis.settings.register_profile(
    "default", deadline=None, max_examples=25, derandomize=True, print_blob=True
)
hypothesis.settings.register_profile("thorough", deadline=None, max_examples=300)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
