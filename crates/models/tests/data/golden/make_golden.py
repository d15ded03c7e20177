"""Writes the PyTorch oracles that crates/models/tests/golden.rs compares the zoo against.

    ~/.cache/ventral-peers/bin/python crates/models/tests/data/golden/make_golden.py

(needs torch, torchvision, numpy, safetensors; the Rust tests need none of them).

Weights and inputs are not stored: both sides compute them from a formula (below, and
tests/golden/oracle.rs), so only PyTorch's results are committed:

- logits.json: for each case, the model, input shape, state-dict keys and shapes, and the
  eval-mode logits PyTorch computes for the formula's weights and input.
- train.json + train_<model>.safetensors: one SGD step in training mode (BatchNorm on batch
  statistics) from the formula's weights and batch: the loss, and the state dict after the
  step (parameters, BatchNorm running statistics, num_batches_tracked).

The formula. For seed s, tensor number t (position in state-dict order, counting every entry
including num_batches_tracked) and element i (row-major):

    h = splitmix64(s ^ (t << 32) ^ i)            (Steele, Lea & Flood 2014; wrapping u64)
    u = (h >> 40) / 2^23 - 1                     (24 bits: exactly representable in f32, [-1, 1))

and the value, computed in f64 and rounded once to f32, by the entry's name:

    *.weight of rank >= 2 (conv, linear)  u * sqrt(6 / fan_in), fan_in = prod(shape[1:])
                                          (Kaiming-uniform's bound: a ReLU layer keeps the
                                          activations' scale, so a deep net's logits depend on
                                          every layer instead of vanishing into the last bias)
    *.weight of rank 1 (BN gamma, LeNet-5 paper's subsampling coefficient)  1 + 0.1 u
    *.bias                                0.1 u
    *.running_mean                        0.1 u
    *.running_var                         1 + 0.5 |u|
    *.num_batches_tracked                 0

The input is u for t = INPUT_T (shape [N, C, H, W]); label n is (h >> 40) % classes with
t = LABEL_T, i = n.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision import models

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/data: zoo_defs.py
import zoo_defs  # noqa: E402

INPUT_T = 0xFFFF
LABEL_T = 0xFFFE


def splitmix64(z):
    """SplitMix64's output function on a uint64 array (numpy wraps on overflow)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hashes(seed, t, n, start=0):
    key = np.uint64(seed) ^ (np.uint64(t) << np.uint64(32))
    return splitmix64(key ^ np.arange(start, start + n, dtype=np.uint64))


def uniform(seed, t, n):
    """u in [-1, 1) as float64, in chunks (VGG's first linear layer has 102 M values)."""
    out = np.empty(n, dtype=np.float64)
    chunk = 1 << 23
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        h = hashes(seed, t, m, start)
        out[start:start + m] = (h >> np.uint64(40)).astype(np.float64) / float(1 << 23) - 1.0
    return out


def entry_value(name, shape, seed, t):
    n = int(np.prod(shape)) if shape else 1
    if name.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    u = uniform(seed, t, n)
    if name.endswith("running_mean") or name.endswith("bias"):
        v = 0.1 * u
    elif name.endswith("running_var"):
        v = 1.0 + 0.5 * np.abs(u)
    elif name.endswith("weight") and len(shape) >= 2:
        v = u * math.sqrt(6.0 / int(np.prod(shape[1:])))
    elif name.endswith("weight"):
        v = 1.0 + 0.1 * u
    else:
        raise ValueError(f"no formula for {name}")
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def formula_state(model, seed):
    state = {}
    for t, (name, value) in enumerate(model.state_dict().items()):
        state[name] = entry_value(name, list(value.shape), seed, t)
    model.load_state_dict(state, strict=True)
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def formula_input(seed, shape):
    return torch.from_numpy(uniform(seed, INPUT_T, int(np.prod(shape))).astype(np.float32).reshape(shape))


def formula_labels(seed, n, classes):
    h = hashes(seed, LABEL_T, n)
    return torch.from_numpy(((h >> np.uint64(40)) % np.uint64(classes)).astype(np.int64))


# --- The zoo entries torchvision and zoo_defs.py do not define -------------------------------

class LinearClassifier(nn.Module):
    """Ventral's `linear`: flatten, one Linear (keys `weight`, `bias`)."""

    def __init__(self, inputs, classes):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, inputs))
        self.bias = nn.Parameter(torch.empty(classes))

    def forward(self, x):
        return F.linear(x.flatten(1), self.weight, self.bias)


class Mlp(nn.Module):
    """Ventral's `mlp`: inputs -> 100 -> ReLU -> classes."""

    def __init__(self, inputs, classes, hidden=100):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


# LeCun et al. 1998, Table I, as printed: row = S2 map, column = C3 map, X = connected.
TABLE_I = [
    "X   XXX  XXXX XX",
    "XX   XXX  XXXX X",
    "XXX   XXX  X XXX",
    " XXX  XXXX  X XX",
    "  XXX  XXXX XX X",
    "   XXX  XXXX XXX",
]


def squash(a):
    return 1.7159 * torch.tanh(a * (2.0 / 3.0))


class Subsampling(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c))
        self.bias = nn.Parameter(torch.empty(c))

    def forward(self, x):
        n, c, h, w = x.shape
        sums = x.reshape(n, c, h // 2, 2, w // 2, 2).sum(dim=(3, 5))
        return sums * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)


class PartialConv(nn.Module):
    """C3: each output map is a 5x5 convolution over the S2 maps Table I connects it to; the
    60 kernels are stored output map by output map, inputs in ascending order."""

    def __init__(self):
        super().__init__()
        self.inputs = [[r for r in range(6) if TABLE_I[r][o] == "X"] for o in range(16)]
        assert sum(map(len, self.inputs)) == 60
        self.weight = nn.Parameter(torch.empty(60, 5, 5))
        self.bias = nn.Parameter(torch.empty(16))

    def forward(self, x):
        maps, k = [], 0
        for o, ins in enumerate(self.inputs):
            w = self.weight[k:k + len(ins)].unsqueeze(0)  # [1, len, 5, 5]
            maps.append(F.conv2d(x[:, ins], w, self.bias[o:o + 1]))
            k += len(ins)
        return torch.cat(maps, 1)


class Rbf(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.register_buffer("weight", torch.empty(classes, 84))

    def forward(self, x):
        return -((x[:, None, :] - self.weight[None]) ** 2).sum(-1)


class LeNet5Paper(nn.Module):
    """LeCun et al. 1998: 32x32 input (28x28 is centred in zeros), scaled tanh, RBF output."""

    def __init__(self, classes=10):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.s2 = Subsampling(6)
        self.c3 = PartialConv()
        self.s4 = Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.output = Rbf(classes)

    def forward(self, x):
        if x.shape[-1] == 28:
            x = F.pad(x, (2, 2, 2, 2))
        x = squash(self.c1(x))
        x = squash(self.s2(x))
        x = squash(self.c3(x))
        x = squash(self.s4(x))
        x = squash(self.c5(x)).flatten(1)
        x = squash(self.f6(x))
        return self.output(x)


def zoo(name, classes):
    """The PyTorch model for zoo entry `name`: torchvision's, zoo_defs.py's or the ones above."""
    if name == "linear":
        return LinearClassifier(784, classes)
    if name == "mlp":
        return Mlp(784, classes)
    if name == "lenet5_paper":
        return LeNet5Paper(classes)
    if name == "lenet5":
        return zoo_defs.LeNet5(classes)
    if name == "vgg11_cifar":
        return zoo_defs.VGG11Cifar(classes)
    if name == "alexnet_paper":
        return zoo_defs.AlexNetPaper(classes)
    if name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110"):
        return zoo_defs.CifarResNet(int(name[6:]), classes)
    if name == "googlenet":
        return models.googlenet(num_classes=classes, aux_logits=False, init_weights=False, transform_input=False)
    return getattr(models, name)(num_classes=classes)


# (case, model, input [N, C, H, W]): one per building block of the zoo; the ImageNet models at a
# reduced input where their adaptive pooling allows it (VGG's 2x2 features pooled up to 7x7
# with overlapping windows, GoogLeNet's ceil-mode pools with partial windows).
LOGIT_CASES = [
    ("linear", "linear", [2, 1, 28, 28]),
    ("mlp", "mlp", [2, 1, 28, 28]),
    ("lenet5", "lenet5", [2, 1, 28, 28]),
    ("lenet5_paper", "lenet5_paper", [2, 1, 32, 32]),
    ("lenet5_paper_28", "lenet5_paper", [2, 1, 28, 28]),
    ("alexnet", "alexnet", [2, 3, 224, 224]),
    ("alexnet_paper", "alexnet_paper", [2, 3, 227, 227]),
    ("vgg11_64", "vgg11", [2, 3, 64, 64]),
    ("vgg11_bn_64", "vgg11_bn", [2, 3, 64, 64]),
    ("vgg11_cifar", "vgg11_cifar", [2, 3, 32, 32]),
    ("googlenet_112", "googlenet", [2, 3, 112, 112]),
    ("resnet18_64", "resnet18", [2, 3, 64, 64]),
    ("resnet50_64", "resnet50", [2, 3, 64, 64]),
    ("resnet20", "resnet20", [2, 3, 32, 32]),
]
CLASSES = 10

# (model, batch [N, C, H, W], seed)
TRAIN_CASES = [
    ("lenet5", [64, 1, 28, 28], 5),
    ("resnet20", [32, 3, 32, 32], 20),
]
SGD = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}

# Spot values of the hash, so the Rust side can check its own first.
HASH_SPOTS = [(0, 0, 0), (1, 0, 0), (7, 3, 12345), (2024, 0xFFFF, 99), (123456789, 17, (1 << 32) - 1)]


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    spots = [[s, t, i, hash_at(s, t, i)] for s, t, i in HASH_SPOTS]
    cases = []
    for seed, (case, name, shape) in enumerate(LOGIT_CASES, start=100):
        model = zoo(name, CLASSES).eval()
        keys = formula_state(model, seed)
        x = formula_input(seed, shape)
        with torch.no_grad():
            logits = model(x)
        print(f"{case}: max |logit| {logits.abs().max().item():.4g}", flush=True)
        cases.append({"case": case, "model": name, "classes": CLASSES, "seed": seed, "input": shape,
                      "keys": keys, "logits": [float(v) for v in logits.flatten()]})
    with open(os.path.join(HERE, "logits.json"), "w") as f:
        json.dump({"generator": "make_golden.py", "torch": torch.__version__, "hash_spots": spots,
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")

    steps = []
    for name, shape, seed in TRAIN_CASES:
        model = zoo(name, CLASSES).train()
        keys = formula_state(model, seed)
        x = formula_input(seed, shape)
        y = formula_labels(seed, shape[0], CLASSES)
        opt = torch.optim.SGD(model.parameters(), **SGD)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        file = f"train_{name}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(HERE, file))
        print(f"train {name}: loss {loss.item():.6f}", flush=True)
        steps.append({"model": name, "classes": CLASSES, "seed": seed, "input": shape, "keys": keys,
                      "labels": y.tolist(), "loss": float(loss.item()), "sgd": SGD, "after": file})
    with open(os.path.join(HERE, "train.json"), "w") as f:
        json.dump({"generator": "make_golden.py", "torch": torch.__version__, "steps": steps}, f, indent=1)
        f.write("\n")


def hash_at(s, t, i):
    """The 64-bit hash of one element, as a Python int (JSON holds it exactly)."""
    return int(hashes(s, t, 1, i)[0])


if __name__ == "__main__":
    main()
