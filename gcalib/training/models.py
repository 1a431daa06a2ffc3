"""Encoders and the projector head.

* ``resnet18`` / ``resnet50``: torchvision's ResNet with the CIFAR stem (3×3 stride-1 first
  convolution, no max-pool) and the classifier replaced by the identity, so the forward pass returns
  the pooled features (512 / 2048 dimensions).
* ``small_cnn``: four conv-BN-ReLU blocks with pooling, ending in global average pooling to a 128-d
  feature; fast enough to pretrain on the digits data on a laptop CPU.
* :class:`Projector`: ``Linear → BatchNorm → ReLU → Linear`` (SimCLR's head).
"""
from __future__ import annotations

import torch
from torch import nn

from ..validation import check_choice, check_int

__all__ = ["ARCHS", "make_encoder", "SmallCNN", "Projector"]

ARCHS = ("resnet18", "resnet50", "small_cnn")


class SmallCNN(nn.Module):
    """Four 3×3 conv-BN-ReLU blocks of widths ``(w, 2w, 4w, 8w)``, pooled to a ``feature_dim = 8w`` vector.

    The first three blocks end in 2×2 max-pooling, the last in global average pooling (128 features for
    w = 16). About 4 M multiply-adds per 32×32 image.

    Parameters
    ----------
    in_channels : int, default 3
        Image channels, >= 1.
    width : int, default 16
        w, the width of the first block, >= 1.

    Raises
    ------
    TypeError, ValueError
        When an argument is not an int >= 1.
    """

    def __init__(self, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("width", width, 1)
        widths = (width, 2 * width, 4 * width, 8 * width)
        layers: list[nn.Module] = []
        channels = in_channels
        for index, out in enumerate(widths):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2) if index < len(widths) - 1 else nn.AdaptiveAvgPool2d(1))
            channels = out
        self.features = nn.Sequential(*layers)
        self.feature_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of the images ``x``.

        Parameters
        ----------
        x : torch.Tensor
            Images (N, in_channels, H, W).

        Returns
        -------
        torch.Tensor
            Features (N, feature_dim).
        """
        return torch.flatten(self.features(x), 1)


def _cifar_resnet(arch: str, in_channels: int) -> nn.Module:
    from torchvision import models as tv_models

    net = getattr(tv_models, arch)(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.feature_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net


def make_encoder(arch: str, in_channels: int = 3) -> nn.Module:
    """A freshly initialised encoder by name.

    Parameters
    ----------
    arch : {"resnet18", "resnet50", "small_cnn"}
        The architecture (:data:`ARCHS`).
    in_channels : int, default 3
        Image channels, >= 1.

    Returns
    -------
    torch.nn.Module
        Maps images (B, C, H, W) to features (B, feature_dim); its ``feature_dim`` attribute gives the width.

    Raises
    ------
    ValueError
        For an unknown ``arch`` or ``in_channels`` < 1.

    Examples
    --------
    >>> encoder = make_encoder("small_cnn")
    >>> encoder.feature_dim, tuple(encoder(torch.zeros(2, 3, 32, 32)).shape)
    (128, (2, 128))
    """
    check_int("in_channels", in_channels, 1)
    check_choice("arch", arch, ARCHS)
    if arch == "small_cnn":
        return SmallCNN(in_channels)
    return _cifar_resnet(arch, in_channels)


class Projector(nn.Module):
    """SimCLR projection head ``Linear(in, hidden) → BatchNorm1d → ReLU → Linear(hidden, out)``.

    Parameters
    ----------
    in_dim : int
        Width of the encoder's features, >= 1.
    hidden_dim : int, default 2048
        Hidden width, >= 1.
    out_dim : int, default 128
        Width of the projections, >= 1.

    Raises
    ------
    TypeError, ValueError
        When a width is not an int >= 1.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__()
        check_int("in_dim", in_dim, 1)
        check_int("hidden_dim", hidden_dim, 1)
        check_int("out_dim", out_dim, 1)
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projections of the features ``x``.

        Parameters
        ----------
        x : torch.Tensor
            Features (N, in_dim).

        Returns
        -------
        torch.Tensor
            Projections (N, out_dim).
        """
        return self.net(x)
