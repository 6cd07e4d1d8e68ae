"""A stand-in for Triton's onnxruntime backend, as a Python-based backend (tests, CPU benchmark).

The pip-installed tritonserver (nvidia-pytriton) ships only the Python backend. Placed as
``<backend dir>/onnxruntime/model.py``, this file serves every model whose config says
``platform: "onnxruntime_onnx"``, so the repository `ganrt export triton` writes loads unchanged.
It runs the version directory's model.onnx with onnxruntime (the same library and session
options as the in-process runner) on the whole batch the server's dynamic batcher formed.
"""

import json
import os
import time

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("GANRT_TRITON_ORT_THREADS", "1"))
        opts.inter_op_num_threads = 1
        if os.environ.get("GANRT_TRITON_ORT_SPIN", "1") == "0":  # as the in-process runner with spin = false
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        # a config parameter "delay_ms" makes it a slow server (the tests' client timeouts)
        self.delay_s = float(config.get("parameters", {}).get("delay_ms", {}).get("string_value", 0)) / 1e3
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def execute(self, requests):
        time.sleep(self.delay_s)
        feeds = [[pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs] for r in requests]
        sizes = [f[0].shape[0] for f in feeds]
        stacked = {n: np.concatenate([f[i] for f in feeds]) for i, n in enumerate(self.inputs)}
        outs = self.session.run(self.outputs, stacked)
        responses, start = [], 0
        for n in sizes:
            tensors = [pb_utils.Tensor(name, out[start:start + n]) for name, out in zip(self.outputs, outs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses
