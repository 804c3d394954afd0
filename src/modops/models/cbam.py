"""CBAM: Convolutional Block Attention Module (Woo et al. 2018) and a helper that inserts it into a backbone.

CBAM refines a feature map ``x`` of shape [B, C, H, W] in two steps::

    x' = x  * Mc(x)    # channel gate, Mc: [B, C, 1, 1], values in (0, 1)
    y  = x' * Ms(x')   # spatial gate, Ms: [B, 1, H, W], values in (0, 1)

* Channel gate: global average- and max-pooled descriptors ([B, C] each) go through one shared MLP
  (C -> hidden -> C, ReLU between), the two outputs are summed and squashed by a sigmoid.
* Spatial gate: the channel-wise average and max maps ([B, 1, H, W] each) are concatenated, go through a
  k x k convolution (padding k // 2, so H and W are kept), an optional BatchNorm (the authors' code uses one)
  and a sigmoid.

Reference code: github.com/Jongchan/attention-module (``MODELS/cbam.py``).

Initialisation (why it differs from the paper's code): there, CBAM sits *inside* a residual block, before the
addition, so the skip connection carries the signal whatever the gates do at start. :func:`insert_cbam` puts
CBAM *after* a whole stage of a (usually pretrained) backbone, with no skip around it. With the standard init
each gate starts around sigmoid(0) = 0.5, so every inserted module would scale the features by about 0.25, and
the random spatial conv would paint a random attention pattern over them: four inserted modules would shrink
the signal by ~250x and distort it before fine-tuning even starts. We therefore start each gate as a constant
close to 1 (the "zero-init the last layer" idea of Goyal et al. 2017): the last MLP layer and the spatial
BatchNorm scale (or the spatial conv, without BatchNorm) start at zero, and their biases at
:data:`GATE_INIT_LOGIT`, so a fresh CBAM multiplies its input by a uniform sigmoid(3)^2 ~ 0.91 and leaves the
pattern of the pretrained features intact. The zeroed layers still receive gradients (their inputs are not
zero), so attention is learnt from the first step. Pass ``identity_init=False`` for the paper's default init.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CBAM", "ChannelGate", "SpatialGate", "insert_cbam", "GATE_INIT_LOGIT", "MIN_HIDDEN"]

#: Starting logit of each gate under ``identity_init``: sigmoid(3) ~ 0.953. Higher saturates the sigmoid
#: (its slope, 0.045 here, shrinks fast and slows learning); lower attenuates the backbone's signal more.
GATE_INIT_LOGIT = 3.0

#: Floor on the channel MLP's hidden width. With the usual r = 16, a thin layer (16 or 32 channels, as in
#: MobileNet's early stages) would get a bottleneck of 1 or 2 units, so every channel weight would be a
#: function of one or two numbers; 8 units keep the gate expressive at a negligible cost (8 * 2C weights).
MIN_HIDDEN = 8


class ChannelGate(nn.Module):
    """Channel attention: [B, C, H, W] -> gate [B, C, 1, 1] in (0, 1)."""

    def __init__(self, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, MIN_HIDDEN)
        # One MLP shared by both pooled descriptors, as in the paper (Eq. 2).
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        # sum / n and adaptive max pooling rather than mean / amax: on CPUs, torch's bf16
        # mean and amax over large channels-last maps (and their backward) run 10-30x slower
        # than these, which made CBAM cost more than the convolutions under bf16 autocast.
        # (CUDA autocast runs sum in fp32, so an fp16 sum over a large map cannot overflow.)
        avg = x.sum(dim=(2, 3)) / (h * w)  # [B, C]
        mx = F.adaptive_max_pool2d(x, 1).flatten(1)  # [B, C]
        # One MLP pass over both descriptors stacked along the batch, then split and sum.
        logits = self.mlp(torch.cat([avg, mx], dim=0))
        logits = logits[:b] + logits[b:]
        return torch.sigmoid(logits).view(b, c, 1, 1)


class SpatialGate(nn.Module):
    """Spatial attention: [B, C, H, W] -> gate [B, 1, H, W] in (0, 1)."""

    def __init__(self, *, kernel_size: int = 7, batch_norm: bool = True) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            # An even kernel with padding k // 2 would change H and W by one.
            raise ValueError(f"spatial kernel size must be odd and positive, got {kernel_size}")
        # The authors' BasicConv has no conv bias when followed by BatchNorm (the BN shift replaces it).
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
        # Same BatchNorm settings as the authors' code (momentum 0.01).
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01) if batch_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        avg = x.sum(dim=1, keepdim=True) / x.shape[1]  # [B, 1, H, W]; sum / C: see ChannelGate.forward
        pooled = torch.cat([avg, x.amax(dim=1, keepdim=True)], dim=1)  # [B, 2, H, W]
        return torch.sigmoid(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel gate then spatial gate; [B, C, H, W] -> [B, C, H, W].

    Args:
        channels: C, the number of channels of the feature map it refines.
        reduction: r, the channel MLP's reduction ratio; the hidden width is ``max(C // r, 8)``
            (see :data:`MIN_HIDDEN`: very thin layers would otherwise get a 1- or 2-unit bottleneck).
        spatial_kernel: k, the odd kernel size of the spatial gate's conv (7 in the paper), padding k // 2.
        spatial_bn: BatchNorm after the spatial conv, as in the authors' code.
        identity_init: start both gates as a constant ~0.95 instead of the random ~0.5 of the standard init,
            so a freshly inserted module keeps a pretrained backbone's features (see the module docstring).
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: int = 16,
        spatial_kernel: int = 7,
        spatial_bn: bool = True,
        identity_init: bool = True,
    ) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"channels and reduction must be positive, got {channels} and {reduction}")
        self.channels = channels
        self.channel_gate = ChannelGate(channels, reduction=reduction)
        self.spatial_gate = SpatialGate(kernel_size=spatial_kernel, batch_norm=spatial_bn)
        if identity_init:
            self._identity_init()

    @torch.no_grad()
    def _identity_init(self) -> None:
        last = self.channel_gate.mlp[-1]
        last.weight.zero_()
        # The MLP runs on both descriptors and the two outputs are summed, so its bias counts twice.
        last.bias.fill_(GATE_INIT_LOGIT / 2)
        bn = self.spatial_gate.bn
        if isinstance(bn, nn.BatchNorm2d):
            bn.weight.zero_()
            bn.bias.fill_(GATE_INIT_LOGIT)
        else:
            self.spatial_gate.conv.weight.zero_()
            self.spatial_gate.conv.bias.fill_(GATE_INIT_LOGIT)

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both attention maps for ``x`` [B, C, H, W]: channel [B, C, 1, 1] and spatial [B, 1, H, W], in (0, 1)."""
        channel = self.channel_gate(x)
        return channel, self.spatial_gate(x * channel)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"CBAM({self.channels}) expects [B, {self.channels}, H, W], got {list(x.shape)}")
        x = x * self.channel_gate(x)
        return x * self.spatial_gate(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def insert_cbam(
    model: nn.Module,
    layer_paths: Sequence[str],
    *,
    input_size: int = 64,
    reduction: int = 16,
) -> nn.Module:
    """Insert a CBAM after each named submodule, in place: ``model.<path>`` becomes ``Sequential(original, CBAM(C))``.

    Args:
        model: the network; it is modified in place and returned.
        layer_paths: dotted submodule paths as accepted by ``model.get_submodule`` (``"layer4"``, ``"features.7"``).
            Each must output a 4-D feature map [B, C, H, W]; C is read from one dry forward pass.
        input_size: side in pixels of the zero image [1, 3, S, S] used for the dry pass. Only the channel count is
            read, but S must be large enough that no layer's map shrinks below 1 x 1.
        reduction: the CBAM channel MLP's reduction ratio r.

    Returns:
        ``model`` itself. The result is deterministic for a given architecture and ``layer_paths`` (paths are
        wrapped deepest first, then in the order given), so its ``state_dict`` keys are stable: weights saved from
        one inserted model load with ``strict=True`` into a freshly built model after the same insertion. The
        original weights move from ``<path>.<name>`` to ``<path>.0.<name>``; the CBAM's live under ``<path>.1.``.

    Raises:
        ValueError: naming the path, when it is empty, repeated, missing, not run by the forward pass, or does
            not output a 4-D tensor.
    """
    paths = list(layer_paths)
    if len(set(paths)) != len(paths):
        raise ValueError(f"layer paths repeat: {paths}")
    targets: dict[str, nn.Module] = {}
    for path in paths:
        if not path:
            raise ValueError("layer path '' names the model itself; CBAM can only wrap a submodule")
        try:
            targets[path] = model.get_submodule(path)
        except AttributeError as err:
            raise ValueError(f"no submodule {path!r} in {type(model).__name__}: {err}") from None

    outputs = _dry_run_outputs(model, targets, input_size=input_size)

    # Check every path before touching the model, so a bad path leaves it unmodified.
    channels: dict[str, int] = {}
    for path in paths:
        out = outputs.get(path)
        if out is None:
            raise ValueError(
                f"submodule {path!r} did not run in the forward pass of a [1, 3, {input_size}, {input_size}] "
                "input, so its output channels are unknown"
            )
        if not isinstance(out, Tensor) or out.dim() != 4:
            got = f"shape {list(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"submodule {path!r} outputs {got}, not a 4-D feature map [B, C, H, W]")
        channels[path] = out.shape[1]

    # Deepest first: wrapping "layer1.0" then "layer1" gives predictable keys whatever order the paths come in.
    for path in sorted(paths, key=lambda p: -p.count(".")):
        original = targets[path]
        out = outputs[path]
        assert isinstance(out, Tensor)  # checked above
        cbam = CBAM(channels[path], reduction=reduction).to(device=out.device, dtype=out.dtype)
        # The new CBAM follows the mode of the module it wraps (train, or eval for a frozen stage).
        cbam.train(original.training)
        parent_path, _, name = path.rpartition(".")
        setattr(model.get_submodule(parent_path), name, nn.Sequential(original, cbam))
    return model


def _dry_run_outputs(model: nn.Module, targets: dict[str, nn.Module], *, input_size: int) -> dict[str, object]:
    """One forward pass of a zero image [1, 3, S, S] recording each target's first output (path -> output)."""
    outputs: dict[str, object] = {}
    hooks = []
    for path, module in targets.items():

        def hook(_module: nn.Module, _inputs: object, output: object, *, _path: str = path) -> None:
            outputs.setdefault(_path, output)

        hooks.append(module.register_forward_hook(hook))

    # Eval mode so BatchNorm uses (and does not update) its running stats and dropout is off; remember each
    # module's own flag, since a model may mix modes (e.g. frozen BatchNorm layers kept in eval while training).
    modes = {module: module.training for module in model.modules()}
    reference = next(model.parameters(), None)
    if reference is None:
        reference = next(model.buffers(), torch.empty(0))
    dtype = reference.dtype if reference.is_floating_point() else torch.get_default_dtype()
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size, device=reference.device, dtype=dtype))
    finally:
        for handle in hooks:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return outputs
