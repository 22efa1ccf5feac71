"""Triton python-backend model: encoded images in, detections in original-image pixels out (our Detector).
The stub runs its own Python without our environment: EFFDET_DEPLOY_PYTHONPATH (set by `effdet-deploy serve`)
names the site folders to put first, before numpy is imported. In a container with the package installed, unset."""
import os
import site
import sys

_before = list(sys.path)
for _p in filter(None, os.environ.get("EFFDET_DEPLOY_PYTHONPATH", "").split(os.pathsep)):
    site.addsitedir(_p)
sys.path[:] = [p for p in sys.path if p not in _before] + _before

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import triton_python_backend_utils as pb_utils  # noqa: E402

from runtime.served import INPUT, config_parameters  # noqa: E402
from runtime.served_model import ServedDetector  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        params = config_parameters(json.loads(args["model_config"]))
        folder = Path(args["model_repository"]) / args["model_version"]
        gpu = args.get("model_instance_kind") == "GPU"
        device = f"cuda:{args.get('model_instance_device_id', '0')}" if gpu else "cpu"
        self.served = ServedDetector(folder / params["model_file"], params, device)

    def execute(self, requests):
        tensors = [pb_utils.get_input_tensor_by_name(r, INPUT).as_numpy() for r in requests]
        return [_response(reply) for reply in self.served.run(tensors)]

    def finalize(self):
        self.served.close()


def _response(reply):
    if isinstance(reply, str):
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(reply))
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in reply.items()])
