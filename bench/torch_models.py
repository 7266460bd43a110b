"""Hand-written torch versions of CaffeNet, GoogLeNet and ResNet-50 (the deploy prototxts of
tests/golden/net/models), as a PyTorch user would write them, for bench_net.py's baseline.

``modules_in_caffe_order(model)`` lists the parametrised modules in the order of the Caffe layers that
own the same blobs, so ``load_from_net`` can copy a netspec.Net's weights (BatchNorm2d takes Caffe's
BatchNorm statistics divided by the scale factor, and the following Scale layer's gamma/beta).
"""
import torch
from torch import nn
import torch.nn.functional as F


def caffenet(num_classes=1000):
    def conv(i, o, k, s=1, p=0, g=1):
        return nn.Conv2d(i, o, k, s, p, groups=g)
    return nn.Sequential(
        conv(3, 96, 11, 4), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.LocalResponseNorm(5, 1e-4, 0.75), conv(96, 256, 5, p=2, g=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True), nn.LocalResponseNorm(5, 1e-4, 0.75),
        conv(256, 384, 3, p=1), nn.ReLU(inplace=True), conv(384, 384, 3, p=1, g=2), nn.ReLU(inplace=True),
        conv(384, 256, 3, p=1, g=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Flatten(),
        nn.Linear(9216, 4096), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(4096, 4096),
        nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(4096, num_classes), nn.Softmax(dim=1))


class Inception(nn.Module):
    def __init__(self, i, c1, r3, c3, r5, c5, cp):
        super().__init__()
        self.b1 = nn.Conv2d(i, c1, 1)
        self.r3, self.b3 = nn.Conv2d(i, r3, 1), nn.Conv2d(r3, c3, 3, padding=1)
        self.r5, self.b5 = nn.Conv2d(i, r5, 1), nn.Conv2d(r5, c5, 5, padding=2)
        self.bp = nn.Conv2d(i, cp, 1)

    def forward(self, x):
        r = F.relu
        return torch.cat([r(self.b1(x)), r(self.b3(r(self.r3(x)))), r(self.b5(r(self.r5(x)))),
                          r(self.bp(F.max_pool2d(x, 3, 1, 1, ceil_mode=True)))], 1)


def googlenet(num_classes=1000):
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3), nn.ReLU(inplace=True), pool(), nn.LocalResponseNorm(5, 1e-4, 0.75),
        nn.Conv2d(64, 64, 1), nn.ReLU(inplace=True), nn.Conv2d(64, 192, 3, padding=1), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, 1e-4, 0.75), pool(),
        Inception(192, 64, 96, 128, 16, 32, 32), Inception(256, 128, 128, 192, 32, 96, 64), pool(),
        Inception(480, 192, 96, 208, 16, 48, 64), Inception(512, 160, 112, 224, 24, 64, 64),
        Inception(512, 128, 128, 256, 24, 64, 64), Inception(512, 112, 144, 288, 32, 64, 64),
        Inception(528, 256, 160, 320, 32, 128, 128), pool(),
        Inception(832, 256, 160, 320, 32, 128, 128), Inception(832, 384, 192, 384, 48, 128, 128),
        nn.AvgPool2d(7, 1), nn.Dropout(0.4), nn.Flatten(), nn.Linear(1024, num_classes), nn.Softmax(dim=1))


def conv_bn(i, o, k, s=1, p=0):
    return nn.Sequential(nn.Conv2d(i, o, k, s, p, bias=False), nn.BatchNorm2d(o))


class Bottleneck(nn.Module):
    def __init__(self, i, mid, stride, project):
        super().__init__()
        self.branch1 = conv_bn(i, mid * 4, 1, stride) if project else None
        self.a, self.b = conv_bn(i, mid, 1, stride), conv_bn(mid, mid, 3, 1, 1)
        self.c = conv_bn(mid, mid * 4, 1)

    def forward(self, x):
        short = self.branch1(x) if self.branch1 is not None else x
        return F.relu(self.c(F.relu(self.b(F.relu(self.a(x))))) + short)


def resnet50(num_classes=1000):
    layers = [conv_bn(3, 64, 7, 2, 3), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True)]
    i = 64
    for mid, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for k in range(n):
            layers.append(Bottleneck(i, mid, stride if k == 0 else 1, k == 0))
            i = mid * 4
    layers += [nn.AvgPool2d(7, 1), nn.Flatten(), nn.Linear(2048, num_classes), nn.Softmax(dim=1)]
    return nn.Sequential(*layers)


MODELS = {"caffenet": caffenet, "googlenet": googlenet, "resnet50": resnet50}


def modules_in_caffe_order(model):
    """Conv2d / BatchNorm2d / Linear modules in the order their Caffe layers appear (construction order
    above follows the prototxts)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]


@torch.no_grad()
def load_from_net(model, net):
    """Copy a netspec.Net's blobs into the hand-written model."""
    caffe = [(t, list(l.blobs)) for t, l in zip(net.layer_types, net.layers) if len(l.blobs)]
    mods = modules_in_caffe_order(model)
    k = 0
    for m in mods:
        t, blobs = caffe[k]
        if isinstance(m, nn.BatchNorm2d):
            assert t == "BatchNorm" and caffe[k + 1][0] == "Scale", (t, caffe[k + 1][0])
            f = blobs[2][0].item()
            f = 0.0 if f == 0 else 1.0 / f
            m.running_mean.copy_(blobs[0] * f)
            m.running_var.copy_(blobs[1] * f)
            m.eps = 1e-5
            m.weight.copy_(caffe[k + 1][1][0])
            m.bias.copy_(caffe[k + 1][1][1])
            k += 2
            continue
        assert m.weight.shape == blobs[0].shape, (t, m, blobs[0].shape)
        m.weight.copy_(blobs[0])
        if m.bias is not None:
            m.bias.copy_(blobs[1])
        k += 1
    assert k == len(caffe), (k, len(caffe))
    return model
