"""The `tensorrt` test tier's skip: building and running engines needs TensorRT and an NVIDIA GPU."""
import pytest

from runtime.gpu import cuda_device_count
from runtime.trt_compat import tensorrt_available

needs_trt = pytest.mark.skipif(not (tensorrt_available() and cuda_device_count()),
                               reason="needs TensorRT and an NVIDIA GPU (not on this machine)")
