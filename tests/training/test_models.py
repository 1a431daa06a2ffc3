import pytest
import torch
from torch import nn

from gcalib.training.models import ARCHS, Projector, SmallCNN, make_encoder


@pytest.mark.parametrize("arch, dim", [("small_cnn", 128), ("resnet18", 512), ("resnet50", 2048)])
def test_encoder_output_shape_and_feature_dim(arch, dim):
    torch.manual_seed(0)
    encoder = make_encoder(arch).eval()
    with torch.no_grad():
        out = encoder(torch.randn(2, 3, 16, 16))
    assert encoder.feature_dim == dim
    assert out.shape == (2, dim)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_resnet_has_cifar_stem(arch):
    net = make_encoder(arch)
    assert isinstance(net.conv1, nn.Conv2d)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity) and isinstance(net.fc, nn.Identity)
    # The CIFAR stem keeps the input resolution into layer1.
    with torch.no_grad():
        x = net.relu(net.bn1(net.conv1(torch.randn(1, 3, 12, 12))))
        assert net.layer1(net.maxpool(x)).shape[-1] == 12


def test_in_channels_and_other_sizes():
    encoder = make_encoder("small_cnn", in_channels=1).eval()
    with torch.no_grad():
        assert encoder(torch.randn(3, 1, 28, 28)).shape == (3, 128)
        assert make_encoder("resnet18", in_channels=1).eval()(torch.randn(1, 1, 20, 20)).shape == (1, 512)
    assert SmallCNN(width=8).feature_dim == 64


def test_projector_shape_and_layers():
    proj = Projector(128)
    assert proj(torch.randn(4, 128)).shape == (4, 128)
    kinds = [type(m) for m in proj.net]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert proj.net[0].out_features == 2048
    assert Projector(16, hidden_dim=32, out_dim=8)(torch.randn(5, 16)).shape == (5, 8)


def test_unknown_arch_lists_valid_names():
    with pytest.raises(ValueError) as err:
        make_encoder("vgg")
    for name in ARCHS:
        assert name in str(err.value)
    assert "'vgg'" in str(err.value)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"in_dim": 0}, ValueError, "in_dim must be an int >= 1, got 0"),
    ({"in_dim": 8, "hidden_dim": -1}, ValueError, "hidden_dim must be an int >= 1, got -1"),
    ({"in_dim": 8, "out_dim": 2.5}, TypeError, r"out_dim must be an int >= 1, got 2.5 \(float\)"),
])
def test_projector_rejects_bad_sizes(kwargs, error, match):
    with pytest.raises(error, match=match):
        Projector(**kwargs)


def test_encoder_rejects_bad_in_channels():
    with pytest.raises(ValueError, match="in_channels"):
        make_encoder("small_cnn", in_channels=0)
