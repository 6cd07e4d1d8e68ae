"""Generator and discriminator architectures.

Teacher: the pix2pix/CycleGAN ResNet generator (9 blocks, ngf=64: ~11 M params,
the size GAN Compression starts from) and a 70x70 PatchGAN discriminator.
Student: a real-time generator whose body works at 1/down resolution after
pixel-unshuffle (the cheapest lever on a CPU, see the cost model in docs/bundle-and-export.md), with
pixel-shuffle back up, a global residual and a clamped output. The student is defined once,
in ``ganrt.runtime.backends.torch.models`` (the runtime's torch runner loads the same network),
and re-exported here.

Both generators map [0,1] images to [0,1] images, so their ONNX exports share one
I/O contract. Both expose ``features(x)`` (mid-body activations at 1/4
resolution) for feature distillation. With ``scale`` > 1 (super-resolution) both return an
image ``scale`` times the input's size: the teacher through extra up-stages, the
student through a larger pixel-shuffle over a bilinear or bicubic base.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganrt.runtime.backends.torch.models import BASES, StudentConfig, student_classes  # noqa: F401 (re-export)


class ResBlock(nn.Module):
    def __init__(self, ch: int, norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=not norm)]
        if norm:
            layers.append(nn.InstanceNorm2d(ch))
        layers += [nn.ReLU(inplace=True), nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=not norm)]
        if norm:
            layers.append(nn.InstanceNorm2d(ch))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@dataclass(frozen=True)
class TeacherConfig:
    channels: int = 1
    ngf: int = 64
    n_blocks: int = 9
    feature_blocks: tuple[int, ...] = (1, 3, 5, 7)  # body outputs used for distillation
    scale: int = 1  # output / input size: 1, 2 or 4 (one extra x2 up-stage per factor 2)
    # "resize": nearest x2 + 3x3 conv (no checkerboard: every output pixel sees the same taps);
    # "transpose": stride-2 transposed convs (the original pix2pix; uneven overlap paints a checkerboard)
    upsample: str = "transpose"
    # > 0: structure-preserving output, input (or its bilinear upsample) + a residual whose local mean
    # (a box of this width, twice, as the student's) is removed; 0: the original output
    lowpass: int = 0
    base: str = "bilinear"  # super-resolution: the fixed upsample the output corrects (the student's BASES)

    def __post_init__(self) -> None:
        if self.scale not in (1, 2, 4):
            raise ValueError(f"teacher scale must be 1, 2 or 4 (got {self.scale})")
        if self.upsample not in ("resize", "transpose"):
            raise ValueError(f"teacher upsample must be 'resize' or 'transpose' (got {self.upsample!r})")
        if self.lowpass < 0 or (self.lowpass and self.lowpass % 2 == 0):
            raise ValueError(f"teacher lowpass must be 0 or odd (got {self.lowpass})")
        if self.base not in BASES:
            raise ValueError(f"teacher base must be one of {', '.join(BASES)} (got {self.base!r})")

    def to_dict(self) -> dict:
        return asdict(self)


class ResnetGenerator(nn.Module):
    """pix2pix / CycleGAN ResNet generator (instance norm, reflect padding)."""

    def __init__(self, cfg: TeacherConfig = TeacherConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        c, g = cfg.channels, cfg.ngf
        self.down = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(c, g, 7, bias=False), nn.InstanceNorm2d(g), nn.ReLU(True),
            nn.Conv2d(g, 2 * g, 3, stride=2, padding=1, bias=False), nn.InstanceNorm2d(2 * g), nn.ReLU(True),
            nn.Conv2d(2 * g, 4 * g, 3, stride=2, padding=1, bias=False), nn.InstanceNorm2d(4 * g), nn.ReLU(True),
        )
        self.blocks = nn.ModuleList(ResBlock(4 * g) for _ in range(cfg.n_blocks))
        # scale 1 keeps the original layer indices (checkpoints of same-size teachers load unchanged);
        # each factor 2 of super-resolution adds one stage at full width before the output conv
        up2 = _resize_up if cfg.upsample == "resize" else _transpose_up
        extra: list[nn.Module] = []
        for _ in range(cfg.scale.bit_length() - 1):
            extra += up2(g, g)
        self.up = nn.Sequential(*up2(4 * g, 2 * g), *up2(2 * g, g), *extra,
                                nn.ReflectionPad2d(3), nn.Conv2d(g, c, 7), nn.Tanh())
        k = cfg.lowpass
        self.lowpass = nn.AvgPool2d(k, stride=1, padding=k // 2, count_include_pad=False) if k else None

    def _run(self, x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.down(x * 2.0 - 1.0)
        feats: list[torch.Tensor] = []
        for i, blk in enumerate(self.blocks):
            h = blk(h)
            if keep and i in self.cfg.feature_blocks:
                feats.append(h)
        if self.lowpass is not None:  # structure-preserving: detail only, the local mean stays the input's
            r = self.up(h)
            r = r - self.lowpass(self.lowpass(r))
            base = x if self.cfg.scale == 1 else F.interpolate(x, scale_factor=self.cfg.scale, mode=self.cfg.base,
                                                               align_corners=False)
            return torch.clamp(base + r, 0.0, 1.0), feats
        if self.cfg.scale == 1:
            return (self.up(h) + 1.0) * 0.5, feats
        # Super-resolution: a correction on top of the fixed upsample. Without this global residual
        # the teacher had to synthesise every pixel, and in 400 steps it left the scan-conversion
        # surround (rarely in its crops) at mid-grey: 10.6 dB on whole frames, below bicubic.
        base = F.interpolate(x, scale_factor=self.cfg.scale, mode=self.cfg.base, align_corners=False)
        return torch.clamp(base + self.up(h), 0.0, 1.0), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, keep=False)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self._run(x, keep=True)

    @property
    def feature_channels(self) -> list[int]:
        return [4 * self.cfg.ngf] * len(self.cfg.feature_blocks)


def _transpose_up(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.InstanceNorm2d(cout), nn.ReLU(True)]


def _resize_up(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, bias=False),
            nn.InstanceNorm2d(cout), nn.ReLU(True)]


def icnr_(conv: nn.Conv2d, factor: int) -> None:
    """ICNR init of a conv feeding a PixelShuffle(``factor``): every sub-pixel of a shuffled block starts
    with the same filter, so the untrained network upsamples like nearest-neighbour and training
    starts without the grid a random sub-pixel init paints (Aitken et al. 2017)."""
    out_c = conv.out_channels // (factor * factor)
    with torch.no_grad():
        w = torch.empty(out_c, *conv.weight.shape[1:])
        nn.init.kaiming_normal_(w, nonlinearity="relu")
        w *= 0.1  # a small residual at the start
        conv.weight.copy_(w.repeat_interleave(factor * factor, dim=0))
        if conv.bias is not None:
            conv.bias.zero_()


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN on (input, output) pairs; ``features`` feed perceptual terms. A smaller
    input (super-resolution) is upsampled bilinearly to the output's size before pairing."""

    def __init__(self, channels: int = 1, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(2 * channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False),
                nn.InstanceNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def _pair(inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if inp.shape[-2:] != out.shape[-2:]:
            inp = F.interpolate(inp, size=out.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([inp * 2 - 1, out * 2 - 1], dim=1)

    def forward(self, inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return self.net(self._pair(inp, out))

    def features(self, inp: torch.Tensor, out: torch.Tensor) -> list[torch.Tensor]:
        h, feats = self._pair(inp, out), []
        for layer in self.net:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(h)
        return feats


# The student (StudentConfig, StudentGenerator) is defined once, on the runtime side: the torch runner
# loads the same network from the bundle's student.safetensors, and the runtime may not import the
# export. Same class, same parameter names, same forward/forward_features/feature_channels.
StudentGenerator, _PlainBlock = student_classes(torch)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def count_macs(m: nn.Module, hw: tuple[int, int], channels: int = 1) -> int:
    """Multiply-accumulates of conv layers for one frame of *input* size ``hw`` (the cost that
    matters on CPU/GPU; for a super-resolution model pass the output size divided by its scale)."""
    total = 0

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        if isinstance(mod, nn.ConvTranspose2d):
            total += int(inp[0].numel() // inp[0].shape[0]) * k * mod.out_channels // mod.groups
        else:
            total += int(out.numel() // out.shape[0]) * k * mod.in_channels // mod.groups

    handles = [x.register_forward_hook(hook) for x in m.modules() if isinstance(x, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            m.eval()
            m(torch.zeros(1, channels, *hw))
    finally:
        for h in handles:
            h.remove()
    return total
