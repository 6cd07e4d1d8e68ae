"""Quantization-aware fine-tuning of the student (fake int8 where the Q/DQ artifacts quantize).

Why: the student's residual stream has no normalisation, so its per-tensor activation ranges are
wide and heavy-tailed (0..25 with a mean of 0.5 in the first trained bundle); post-training int8
then lost 15 dB against fp32 and the gate could only pass by leaving most convs in float.

What is emulated is what the exported Q/DQ graph does (ORT's QDQ quantizer on Conv nodes):
- weights: per-output-channel symmetric int8, scale = max|w| / 127 (recomputed every step);
- each conv's input and output: per-tensor symmetric int8 with a *learned* clipping range
  (LSQ-style: the range is a parameter and gets a gradient through the rounding).
Symmetric int8 is the TensorRT form and the coarser one (a ReLU output uses half the codes); the
CPU artifact's asymmetric uint8 over the same ranges is at least as fine, so one fine-tune serves both.

The learned ranges are exported with the model and handed to the quantizer as tensor overrides
(``QuantRecipe.ranges``), so the int8 artifacts clip exactly where training clipped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

QMAX = 127.0  # symmetric int8 codes -127..127 (zero point 0, TensorRT's rule)


@dataclass(frozen=True)
class ConvRange:
    """Clipping ranges of one conv, in graph order: input [in_min, in_max], output [out_min, out_max]."""

    in_min: float
    in_max: float
    out_min: float
    out_max: float

    def to_dict(self) -> dict:
        return {"input": [self.in_min, self.in_max], "output": [self.out_min, self.out_max]}


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return (x.round() - x).detach() + x


def fake_quant(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 fake quantization; gradients reach both ``x`` (inside the range) and ``scale``."""
    return torch.clamp(_round_ste(x / scale), -QMAX, QMAX) * scale


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    scale = (w.detach().abs().amax(dim=(1, 2, 3), keepdim=True) / QMAX).clamp_min(1e-8)
    return fake_quant(w, scale)


class QatConv2d(nn.Conv2d):
    """Conv2d with fake-quantized weight, input and output. Same parameter names as nn.Conv2d plus
    ``log_in`` / ``log_out`` (log of the clipping ranges, so they stay positive)."""

    def __init__(self, conv: nn.Conv2d, in_range: float, out_range: float) -> None:
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
        self.weight = conv.weight
        self.bias = conv.bias
        self.log_in = nn.Parameter(torch.tensor(float(in_range)).log())
        self.log_out = nn.Parameter(torch.tensor(float(out_range)).log())
        self.quantize = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize:
            return super().forward(x)
        x = fake_quant(x, self.log_in.exp() / QMAX)
        y = F.conv2d(x, fake_quant_weight(self.weight), self.bias, self.stride, self.padding, self.dilation, self.groups)
        return fake_quant(y, self.log_out.exp() / QMAX)

    def conv_range(self) -> ConvRange:
        r_in, r_out = float(self.log_in.detach().exp()), float(self.log_out.detach().exp())
        return ConvRange(0.0, r_in, -r_out, r_out)


def _convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


@torch.no_grad()
def observe_ranges(model: nn.Module, batches: list[torch.Tensor], pct: float = 99.99) -> list[tuple[float, float]]:
    """Per conv (graph order): a high percentile of |input| and of |output| over ``batches``."""
    seen: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    hooks = []
    for name, conv in _convs(model):
        seen[name] = ([], [])

        def hook(_m, inp, out, name=name):
            seen[name][0].append(inp[0].detach().abs().flatten()[::7])
            seen[name][1].append(out.detach().abs().flatten()[::7])

        hooks.append(conv.register_forward_hook(hook))
    try:
        for x in batches:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    q = pct / 100.0
    return [(max(float(torch.quantile(torch.cat(i), q)), 1e-3), max(float(torch.quantile(torch.cat(o), q)), 1e-3))
            for i, o in seen.values()]


def prepare_qat(student: nn.Module, batches: list[torch.Tensor]) -> nn.Module:
    """A copy of ``student`` whose convs are QatConv2d, ranges initialised from ``batches``."""
    was_training = student.training
    student.eval()
    ranges = observe_ranges(student, batches)
    student.train(was_training)
    q = copy.deepcopy(student)
    for (name, conv), (r_in, r_out) in zip(_convs(q), ranges):
        parent = q.get_submodule(name.rsplit(".", 1)[0]) if "." in name else q
        setattr(parent, name.rsplit(".", 1)[-1], QatConv2d(conv, r_in, r_out))
    return q


def set_quantize(model: nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, QatConv2d):
            m.quantize = on


def range_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in model.modules() if isinstance(m, QatConv2d) for p in (m.log_in, m.log_out)]


def weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    ids = {id(p) for p in range_parameters(model)}
    return [p for p in model.parameters() if id(p) not in ids]


def conv_ranges(model: nn.Module) -> list[ConvRange]:
    """The learned ranges in graph order (the order of Conv nodes in the exported ONNX)."""
    return [m.conv_range() for _, m in _convs(model) if isinstance(m, QatConv2d)]


def strip_qat(qat_model: nn.Module, plain: nn.Module) -> nn.Module:
    """Load the fine-tuned weights into a plain student (same parameter names, ranges dropped)."""
    state = {k: v for k, v in qat_model.state_dict().items() if not k.endswith(("log_in", "log_out"))}
    plain.load_state_dict(state)
    return plain
