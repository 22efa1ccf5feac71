"""Triton python-backend model, the ensemble's first step: encoded image -> the native model's `images` tensor
and a `letterbox` row (scale, original height, original width). Path setup as in detector.py."""
import os
import site
import sys

_before = list(sys.path)
for _p in filter(None, os.environ.get("EFFDET_DEPLOY_PYTHONPATH", "").split(os.pathsep)):
    site.addsitedir(_p)
sys.path[:] = [p for p in sys.path if p not in _before] + _before

import json  # noqa: E402

import triton_python_backend_utils as pb_utils  # noqa: E402

from runtime.served import INPUT, config_parameters, info_from_parameters  # noqa: E402
from runtime.served_model import PreProcess  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        params = config_parameters(json.loads(args["model_config"]))
        self.step = PreProcess(info_from_parameters(params, args["model_name"]), params)

    def execute(self, requests):
        tensors = [pb_utils.get_input_tensor_by_name(r, INPUT).as_numpy() for r in requests]
        return [_response(reply) for reply in self.step.run(tensors)]


def _response(reply):
    if isinstance(reply, str):
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(reply))
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in reply.items()])
