"""A small CNN for CPU training from random initialisation (the demo profile's backbone).

ImageNet backbones are built for 224 px and pretrained weights; from random initialisation on
a few CPU cores they learn slowly. This network is VGG-like and shallow: a stride-2 stem, then
four stages of 3x3 convolutions with batch norm, max-pooled between stages, global average
pooling and a linear head. Eight convolutions, about 0.84 M parameters; with bf16 autocast it
trains several times faster than MobileNet-V2 at 128 px on a CPU (``benchmarks/``).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

__all__ = ["SmallCNN"]


def _conv(cin: int, cout: int, *, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SmallCNN(nn.Module):
    """Input [B, 3, S, S] -> logits [B, num_classes]; feature maps at S/16 after ``features``.

    Args:
        num_classes: Output logits.
        widths: Channels of the stem and the four stages.
        dropout: Dropout before the head.
    """

    def __init__(
        self, num_classes: int = 1000, *, widths: tuple[int, ...] = (32, 32, 64, 128, 192), dropout: float = 0.2
    ) -> None:
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.features = nn.Sequential(
            OrderedDict(
                stem=_conv(3, w0, stride=2),
                stage1=_conv(w0, w1),
                stage2=nn.Sequential(nn.MaxPool2d(2), _conv(w1, w2), _conv(w2, w2)),
                stage3=nn.Sequential(nn.MaxPool2d(2), _conv(w2, w3), _conv(w3, w3)),
                stage4=nn.Sequential(nn.MaxPool2d(2), _conv(w3, w4), _conv(w4, w4)),
            )
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(w4, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))
