"""The student generator, defined once, on the runtime side (torch imported lazily).

``ganrt.export`` trains, distils and exports this network; ``ganrt.runtime``'s torch runner
loads the bundle's ``student.safetensors`` into it. The runtime may not import the export
(docs/design.md, Principles), so the one definition lives here and ``ganrt.export.archs`` re-exports it.

No torch at module level: the module classes are created on first use by
``student_classes(torch)`` (cached per torch module). ``StudentGenerator`` and ``PlainBlock``
are also reachable as attributes of this module (``from ...torch_models import
StudentGenerator``), which imports torch at that moment — the export does exactly that.

Parameter names (what ``student.safetensors`` holds; ``load_state_dict(strict=True)``):
``head.0.weight/bias``, ``blocks.N.c1.weight/bias``, ``blocks.N.c2.weight/bias``,
``tail.weight/bias``, and with the optional branches ``context.1/3.weight/bias`` and
``coarse.N.c1/c2.weight/bias`` (blocks) plus the coarse branch's last 1x1 conv, ``gate.weight/bias``
(``smooth``); ``unshuffle``,
``shuffle``, the pools, the ReLUs and the smoothing's fixed convs (buffers) have none.

``scale`` > 1 makes it a super-resolution network (output ``scale`` times the input's H and W):
the tail predicts ``(down * scale)^2`` sub-pixels per body location and the global residual is a
fixed upsample of the input, bilinear (ONNX ``Resize``) or bicubic (``base``; for 2x a fixed conv,
``Bicubic2x``), left in float by the int8 quantizers. ``scale`` = 1 is the original network, parameter for
parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from types import ModuleType
from typing import Any

from ...errors import ModelError

STUDENT_ARCH = "StudentGenerator"  # manifest["weights"]["arch"]
BASES = ("bilinear", "bicubic")  # the super-resolution student's fixed upsample (torch / ONNX Resize modes)
COARSE_FACTOR = 4  # the coarse branch's grid: the body's, average-pooled by this
# Where the gated chroma smoothing runs: "output", on the frame (manifests before the field); "body", on the
# body's grid, in the unshuffled domain before the one pixel shuffle: 1/down^2 of the pooling and no second
# shuffle (at 512^2 on 2 CPU cores, down 2, it added 7-11 % to the network's time; on the output grid, 14-15 %).
SMOOTH_GRIDS = ("output", "body")


@dataclass(frozen=True)
class StudentConfig:
    channels: int = 1
    width: int = 32  # 32 x 5 blocks at 1/4 res: 1.7 GMAC at 512^2, ~15 ms int8 on 2 AVX2 cores
    n_blocks: int = 5
    down: int = 4  # body resolution divisor (pixel-unshuffle factor)
    scale: int = 1  # output size / input size (super-resolution); absent in older manifests = 1
    # > 0: structure-preserving output. The learned residual loses its local mean (a fixed box of this
    # width, applied twice, subtracted) before it is added, so the model can remove speckle and sharpen
    # edges but cannot move the local brightness. 0 (older manifests): the plain residual.
    lowpass: int = 0
    # super-resolution only: the fixed upsample the residual corrects. "bicubic" starts a student where
    # the real 2x check's baseline is (bilinear is about 2 dB below it on real scans); "bilinear" is the
    # value of manifests written before the field existed.
    base: str = "bilinear"
    # > 0: a frame-level context branch of this many hidden channels after the head. Global average
    # pooling of the head's features, two 1x1 convs, added to every body location: a frame-wide view of
    # exposure, noise and veil that a 3x3 body cannot gather locally. 0 (older manifests): none.
    context: int = 0
    # > 0: this many residual blocks on a coarse grid (the body's features average-pooled by
    # COARSE_FACTOR), upsampled back and added after the head: the receptive field heavy noise and
    # veils need, at 1/16 of a body block's cost per block. 0 (older manifests): none.
    coarse: int = 0
    # > 0 (RGB, scale 1): gated chroma smoothing. A 3x3 conv on the body's last features gives each output
    # pixel a gate (sigmoid) on the chroma of the input's local mean (a box of this odd width, applied twice)
    # minus the input: a colour-noise filter the network only has to switch on. A 3x3 body of this size did
    # not learn to remove low light's colour noise (CIEDE2000's main term there) from its pairs. Chroma
    # only: chroma carries little fine structure, and a luma gate, tried as well, opened on clean dark frames
    # and erased thin bright lines. 0 (older manifests): none.
    smooth: int = 0
    smooth_grid: str = "output"  # SMOOTH_GRIDS; ``smooth`` is a box width in that grid's pixels

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def size_multiple(self) -> int:
        """What the input's H and W must be a multiple of: the unshuffle, and the coarse branch's pooling."""
        return self.down * (COARSE_FACTOR if self.coarse else 1)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "student config") -> StudentConfig:
        """Strict: unknown keys and non-positive integers are a ModelError naming ``where``."""
        if not isinstance(raw, Mapping):
            raise ModelError(f"{where}: must be a mapping of {', '.join(f.name for f in fields(cls))}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ModelError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
        vals: dict[str, Any] = {}
        for k, v in raw.items():
            if k in ("base", "smooth_grid"):
                allowed = BASES if k == "base" else SMOOTH_GRIDS
                if v not in allowed:
                    raise ModelError(f"{where}: {k} must be one of {', '.join(allowed)} (got {v!r})")
                vals[k] = v
                continue
            low = 0 if k in ("lowpass", "context", "coarse", "smooth") else 1
            odd = k in ("lowpass", "smooth")
            if isinstance(v, bool) or not isinstance(v, int) or v < low or (odd and v and v % 2 == 0):
                need = {"lowpass": "0 or an odd", "smooth": "0 or an odd", "context": "a non-negative",
                        "coarse": "a non-negative"}.get(k, "a positive")
                raise ModelError(f"{where}: {k} must be {need} integer (got {v!r})")
            vals[k] = int(v)
        return cls(**vals)

    @classmethod
    def coerce(cls, cfg: StudentConfig | Mapping[str, Any] | None) -> StudentConfig:
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        return cls.from_dict(cfg)


@functools.cache
def student_classes(torch: ModuleType) -> tuple[type, type]:
    """``(StudentGenerator, PlainBlock)`` built against ``torch`` (once per torch module)."""
    PlainBlock = _plain_block_class(torch)
    Bicubic2x = _bicubic_class(torch)
    smoothers = {"output": _smooth_class(torch), "body": _body_smooth_class(torch)}
    StudentGenerator = _generator_class(torch, PlainBlock, Bicubic2x, smoothers)
    for cls in (PlainBlock, Bicubic2x, *smoothers.values(), StudentGenerator):  # importable by name (pickle, docs)
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    return StudentGenerator, PlainBlock


# ONNX node-name scopes of the fixed (weight-free) convs, the bicubic base's and the body-grid smoothing's:
# never quantized
FIXED_CONV_SCOPES = ("/bicubic/", "/smooth/")


def _keys_cubic(d: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel at distance ``d`` (a = -0.75: PyTorch's and ONNX Runtime's)."""
    d = abs(d)
    if d <= 1:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a if d < 2 else 0.0


# 5 taps over input offsets -2..2 for each output phase of a 2x enlargement with half-pixel centres:
# output pixel 2i samples the input at i - 0.25, output pixel 2i + 1 at i + 0.25.
_PHASE_TAPS = ([_keys_cubic(d) for d in (1.75, 0.75, 0.25, 1.25)] + [0.0],
               [0.0] + [_keys_cubic(d) for d in (1.25, 0.25, 0.75, 1.75)])


def _bicubic_class(torch: ModuleType) -> type:
    nn = torch.nn

    class Bicubic2x(nn.Module):
        """``F.interpolate(x, scale_factor=2, mode="bicubic")`` as edge padding, one fixed depthwise 5x5 conv
        per output phase and a pixel shuffle. ONNX Runtime's cubic Resize took ~85 ms for a 1024^2 output on
        2 cores (the model's whole int8 budget three times over); this conv takes a few. The weights are a
        non-persistent buffer: nothing in ``student.safetensors``, and the int8 quantizers leave the conv
        (scope ``FIXED_CONV_SCOPES``) in float, where the whole image passes through it."""

        def __init__(self, channels: int) -> None:
            super().__init__()
            rows = torch.tensor(_PHASE_TAPS, dtype=torch.float32)  # (2, 5)
            k = torch.einsum("pi,qj->pqij", rows, rows).reshape(4, 1, 5, 5)  # phase (p, q) -> channel 2p + q
            self.register_buffer("weight", k.repeat(channels, 1, 1, 1), persistent=False)
            self.channels = channels

        def forward(self, x):
            f = torch.nn.functional
            y = f.conv2d(f.pad(x, (2, 2, 2, 2), mode="replicate"), self.weight, groups=self.channels)
            return f.pixel_shuffle(y, 2)

    return Bicubic2x


def _plain_block_class(torch: ModuleType) -> type:
    nn = torch.nn

    class PlainBlock(nn.Module):
        """conv-ReLU-conv + skip, then ReLU: no norm, so Conv+ReLU fuse and quantize cleanly."""

        def __init__(self, ch: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
            self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
            self.act = nn.ReLU(True)

        def forward(self, x):
            return self.act(x + self.c2(self.act(self.c1(x))))

    return PlainBlock


def _box(nn: ModuleType, k: int):
    """The local mean over an odd k x k box, same size out, borders averaged over the pixels inside the frame."""
    return nn.AvgPool2d(k, stride=1, padding=k // 2, count_include_pad=False)


LUMA_RGB = (0.299, 0.587, 0.114)  # BT.601: the luma the gated smoothing leaves alone (the model's input is RGB)


def _smooth_class(torch: ModuleType) -> type:
    nn = torch.nn

    class GatedSmooth(nn.Module):
        """``StudentConfig.smooth`` on the output grid: the chroma of the input's local mean minus the input
        (that difference less its luma, which is taken off every channel alike), scaled by a per-pixel gate.
        Pools, sums and products only: no weights, left in float by the int8 quantizers."""

        on_body = False

        def __init__(self, k: int, down: int) -> None:
            super().__init__()
            self.pool = _box(nn, k)
            self.register_buffer("luma", torch.tensor(LUMA_RGB).view(1, 3, 1, 1), persistent=False)

        def forward(self, x, gate):
            d = self.pool(self.pool(x)) - x
            return torch.sigmoid(gate) * (d - (d * self.luma).sum(dim=1, keepdim=True))

    return GatedSmooth


def _body_smooth_class(torch: ModuleType) -> type:
    nn = torch.nn

    class BodyGatedSmooth(nn.Module):
        """``StudentConfig.smooth`` on the body's grid, on the unshuffled input ``u`` (channel c, sub-pixel s at
        c * down^2 + s). Three fixed 1x1 convs: ``mean`` takes each location's chroma averaged over its
        sub-pixels, ``spread`` copies that to every sub-pixel, ``chroma`` is each sub-pixel's own chroma. The
        term, chroma(local mean) - chroma(input) times the sub-pixel's gate, has zero luma, as on the output
        grid. The fixed convs run in the ``FIXED_CONV_SCOPES`` scope "/smooth/" and stay float under int8."""

        on_body = True

        def __init__(self, k: int, down: int) -> None:
            super().__init__()
            n = down * down
            luma = torch.tensor(LUMA_RGB).view(1, 3)
            p = torch.eye(3) - torch.ones(3, 1) @ luma  # the chroma projection: v minus its luma on each channel
            self.pool = _box(nn, k)
            for name, w in (("mean", torch.kron(p, torch.full((1, n), 1.0 / n))),
                            ("spread", torch.kron(torch.eye(3), torch.ones(n, 1))),
                            ("chroma", torch.kron(p, torch.eye(n)))):
                self.register_buffer(name, w[:, :, None, None].contiguous(), persistent=False)

        def forward(self, u, gate):
            conv = torch.nn.functional.conv2d
            d = conv(self.pool(self.pool(conv(u, self.mean))), self.spread) - conv(u, self.chroma)
            g = torch.sigmoid(gate)
            return torch.cat([g, g, g], 1) * d  # the sub-pixel's gate on each of its three channels

    return BodyGatedSmooth


def _smoothing(nn: ModuleType, smoothers: dict[str, type], cfg: StudentConfig):
    """``(gate conv, smoother)`` for ``cfg.smooth``, or ``(None, None)``. One gate per output pixel
    (``down``^2 sub-pixels per body location); it starts nearly shut (sigmoid(-3), 5 %), so a fresh network
    is close to the plain one."""
    if not cfg.smooth:
        return None, None
    if cfg.channels != 3 or cfg.scale != 1:
        raise ModelError("student config: smooth needs an RGB model (channels 3) at scale 1")
    if cfg.smooth_grid == "body" and cfg.lowpass:
        raise ModelError("student config: smooth on the body grid runs before the lowpass would; use one of them")
    conv = nn.Conv2d(cfg.width, cfg.down * cfg.down, 3, padding=1)
    nn.init.zeros_(conv.weight)
    nn.init.constant_(conv.bias, -3.0)
    return conv, smoothers[cfg.smooth_grid](cfg.smooth, cfg.down)


def _generator_class(torch: ModuleType, PlainBlock: type, Bicubic2x: type, smoothers: dict[str, type]) -> type:
    nn = torch.nn

    class StudentGenerator(nn.Module):
        """Pixel-unshuffle -> conv -> residual blocks at 1/down -> conv -> pixel-shuffle (by down x scale),
        + the (upsampled) input, clamp. With ``lowpass`` the residual's local mean is removed first."""

        def __init__(self, cfg: StudentConfig | Mapping[str, Any] | None = None) -> None:
            super().__init__()
            self.cfg = cfg = StudentConfig.coerce(cfg)
            c, w, d, s = cfg.channels, cfg.width, cfg.down, cfg.scale
            self.unshuffle = nn.PixelUnshuffle(d)
            self.head = nn.Sequential(nn.Conv2d(c * d * d, w, 3, padding=1), nn.ReLU(True))
            # registered in the order they run: qat.conv_ranges pairs modules with the ONNX graph's Conv nodes
            self.context = _context(nn, w, cfg.context) if cfg.context else None
            self.coarse = _coarse(nn, PlainBlock, w, cfg.coarse) if cfg.coarse else None
            self.blocks = nn.ModuleList(PlainBlock(w) for _ in range(cfg.n_blocks))
            self.tail = nn.Conv2d(w, c * (d * s) ** 2, 3, padding=1)
            self.gate, self.smooth = _smoothing(nn, smoothers, cfg)
            self.shuffle = nn.PixelShuffle(d * s)
            k = cfg.lowpass  # AvgPool, not a conv: no weights, left in float by the int8 quantizer
            self.lowpass = _box(nn, k) if k else None
            self.bicubic = Bicubic2x(c) if cfg.base == "bicubic" and s == 2 else None

        def _base(self, x):
            """The global residual: the input itself, or its fixed upsample (SR, ``cfg.base``)."""
            s = self.cfg.scale
            if s == 1:
                return x
            if self.bicubic is not None:
                return self.bicubic(x)
            return torch.nn.functional.interpolate(x, scale_factor=s, mode=self.cfg.base, align_corners=False)

        def _run(self, x, keep: bool):
            u = self.unshuffle(x)
            h = _add_branches(torch, self.head(u), self.context, self.coarse)
            feats = []
            for blk in self.blocks:
                h = blk(h)
                if keep:
                    feats.append(h)
            return torch.clamp(self._base(x) + _residual(self, x, u, h), 0.0, 1.0), feats

        def forward(self, x):
            return self._run(x, keep=False)[0]

        def forward_features(self, x):
            """Output and every block's activation (feature distillation)."""
            return self._run(x, keep=True)

        @property
        def feature_channels(self) -> list[int]:
            return [self.cfg.width] * self.cfg.n_blocks

    return StudentGenerator


def _residual(net, x, u, h):
    """The tail's output on the output grid: pixel-shuffled, less its local mean (``lowpass``), plus the gated
    smoothing on its grid (the body's, before the shuffle; the output's, after it)."""
    t = net.tail(h)
    on_body = net.smooth is not None and net.smooth.on_body
    if on_body:
        t = t + net.smooth(u, net.gate(h))
    r = net.shuffle(t)
    if net.lowpass is not None:
        r = r - net.lowpass(net.lowpass(r))
    if net.smooth is not None and not on_body:
        r = r + net.smooth(x, net.shuffle(net.gate(h)))
    return r


def _add_branches(torch: ModuleType, h, context, coarse):
    """Context and coarse branches onto the head's features. The ReLU keeps every conv input non-negative,
    as the int8 range overrides assume (qat.ConvRange starts inputs at 0)."""
    if context is not None:
        h = torch.relu(h + context(h))
    if coarse is not None:
        # a fixed scale, not the size of h: a Shape node on h's int8 data breaks TensorRT's Q/DQ rules
        c = torch.nn.functional.interpolate(coarse(h), scale_factor=COARSE_FACTOR, mode="bilinear", align_corners=False)
        h = torch.relu(h + c)
    return h


def _context(nn: ModuleType, width: int, hidden: int):
    """Global pooling -> 1x1 conv -> ReLU -> 1x1 conv; the last conv starts at zero, so a fresh branch
    adds nothing and training starts from the plain network."""
    last = nn.Conv2d(hidden, width, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, hidden, 1), nn.ReLU(True), last)


def _coarse(nn: ModuleType, PlainBlock: type, width: int, n_blocks: int):
    """Average pool by COARSE_FACTOR -> residual blocks -> a zero-initialised 1x1 conv, so a fresh branch adds
    nothing. The body's size must be a multiple of COARSE_FACTOR (``StudentConfig.size_multiple``)."""
    last = nn.Conv2d(width, width, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    pool = nn.AvgPool2d(COARSE_FACTOR)
    return nn.Sequential(pool, *(PlainBlock(width) for _ in range(n_blocks)), last)


def build_student(torch: ModuleType, cfg: StudentConfig | Mapping[str, Any] | None = None):
    """A fresh (randomly initialised) StudentGenerator for ``cfg`` (a mapping such as the manifest's
    ``weights.config``, or a StudentConfig); ModelError for a malformed config."""
    return student_classes(torch)[0](StudentConfig.coerce(cfg))


def __getattr__(name: str):  # PEP 562: the torch classes on demand, never at import
    if name in ("StudentGenerator", "PlainBlock"):
        from ...lazy import lazy_import

        gen, block = student_classes(lazy_import("torch", extra="export", what="torch"))
        return gen if name == "StudentGenerator" else block
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
