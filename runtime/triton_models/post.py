"""Triton python-backend model, the ensemble's last step: the native model's outputs (net_*) + `letterbox` ->
num_detections / detection_boxes (original-image pixels) / detection_scores / detection_classes, filtered.
Path setup as in detector.py."""
import os
import site
import sys

_before = list(sys.path)
for _p in filter(None, os.environ.get("EFFDET_DEPLOY_PYTHONPATH", "").split(os.pathsep)):
    site.addsitedir(_p)
sys.path[:] = [p for p in sys.path if p not in _before] + _before

import json  # noqa: E402

import triton_python_backend_utils as pb_utils  # noqa: E402

from runtime.served import config_parameters, info_from_parameters  # noqa: E402
from runtime.served_model import PostProcess  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = config_parameters(config)
        self.names = [i["name"] for i in config["input"]]
        self.step = PostProcess(info_from_parameters(params, args["model_name"]), params)

    def execute(self, requests):
        tensors = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.names} for r in requests]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in reply.items()])
                for reply in self.step.run(tensors)]
