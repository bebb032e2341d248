"""The device the GPU tests run on: cuda:0, or IRISLIB_GPU_TEST_DEVICE (cpu checks the tests' own logic only)."""
import os

DEVICE = os.environ.get("IRISLIB_GPU_TEST_DEVICE", "cuda:0")
