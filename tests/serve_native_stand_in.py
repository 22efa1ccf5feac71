"""Test stand-in for the ensemble's native step on a server without the onnxruntime backend (the nvidia-pytriton
wheel has the python backend only): the same file through ONNX Runtime, raw tensors in and out, as
onnxruntime_onnx would run it. Copied as <name>_native/1/model.py by tests/test_serve_server.py."""
import os
import site
import sys

_before = list(sys.path)
for _p in filter(None, os.environ.get("EFFDET_DEPLOY_PYTHONPATH", "").split(os.pathsep)):
    site.addsitedir(_p)
sys.path[:] = [p for p in sys.path if p not in _before] + _before

from pathlib import Path  # noqa: E402

import triton_python_backend_utils as pb_utils  # noqa: E402

from runtime.onnx_session import create_session  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = create_session(path, ["CPUExecutionProvider"], threads=None)
        self.names = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        responses = []
        for r in requests:
            images = pb_utils.get_input_tensor_by_name(r, "images").as_numpy()
            outputs = self.session.run(self.names, {"images": images})
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(n, v) for n, v in zip(self.names, outputs)]))
        return responses
