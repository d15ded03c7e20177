"""Writes the PyTorch checkpoints that crates/nn/tests/pth.rs (and the cli's tests) read.

    ~/.cache/ventral-peers/bin/python crates/nn/tests/data/pth/make_pth_fixtures.py

(needs torch, torchvision and safetensors; the Rust tests need none of them).

Every file is written by `torch.save` itself, so the tests read PyTorch's real format (a zip
archive of `data.pkl` and one entry per storage, pickle protocol 2):

- lenet5.pth, resnet20.pth: `torch.save(model.state_dict())` of the zoo's LeNet-5 and
  ResNet-20 (crates/models/tests/data/zoo_defs.py, the layout of Ventral's zoo), initialised by
  PyTorch under torch.manual_seed(0), BatchNorm running statistics and num_batches_tracked set
  to non-default values so that every buffer is checked.
- lenet5.safetensors: the same state dict through safetensors (its twin: same logits).
- views.pth: the layouts a state dict can hold besides contiguous float32: a transposed
  (strided) tensor, two views of one shared storage at an offset, float16, bfloat16 and float64
  (read as float32), an nn.Parameter (torch._utils._rebuild_parameter), an int64 scalar, an
  empty tensor.
- views_p4.pth: views.pth's state dict pickled with protocol 4 (FRAME, MEMOIZE,
  SHORT_BINUNICODE, STACK_GLOBAL), as torch.save(..., pickle_protocol=4) writes.
- views_deflated.pth: views.pth's entries re-written deflate-compressed (another zip writer,
  another top directory name).
- checkpoint.pth: a training checkpoint {"epoch", "model": state dict, "optimizer": SGD
  state} whose tensors sit under "model".
- script.pt: a TorchScript archive (torch.jit.save of a Linear(2, 2)), which must be refused
  with its own message although it holds a data.pkl.
- reference.json: for each file, its keys in order with shape, dtype and the FNV-1a 64-bit
  hash of the values' little-endian bytes as Ventral holds them (float32, or int64), so the
  tests compare every value bit for bit without a second copy.
"""
import json
import os
import sys
import zipfile
from collections import OrderedDict

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../../../../.."))
sys.path.insert(0, os.path.join(ROOT, "crates/models/tests/data"))
import zoo_defs  # noqa: E402


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def as_ventral(t):
    """The values as Ventral reads them: int64 stays, every float becomes float32."""
    t = t.detach()
    if t.dtype != torch.int64:
        t = t.to(torch.float32)
    return t.contiguous()


def describe(state):
    out = []
    for key, t in state.items():
        v = as_ventral(t)
        raw = v.numpy().astype("<i8" if v.dtype == torch.int64 else "<f4").tobytes()
        out.append({"key": key, "shape": list(v.shape), "dtype": "I64" if v.dtype == torch.int64 else "F32",
                    "fnv1a64": fnv1a64(raw), "first": [float(x) for x in v.flatten()[:3]]})
    return out


def zoo_state(model):
    """A realistic state dict: PyTorch's initialisation, BatchNorm buffers moved off 0 and 1."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(7)
                module.weight.uniform_(0.9, 1.1)
                module.bias.uniform_(-0.1, 0.1)
    return model.state_dict()


def views_state():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(24, generator=g)
    square = torch.randn(3, 5, generator=g)
    return OrderedDict([
        ("transposed", square.t()),                    # shape [5, 3], strides (1, 5)
        ("shared", base),                              # the whole storage
        ("window", base[4:16].view(3, 4)),             # offset 4 into the same storage
        ("every_other", base[1::2]),                   # stride 2
        ("half", torch.randn(2, 3, generator=g).half()),
        ("bfloat", torch.randn(4, generator=g).bfloat16()),
        ("double", torch.randn(3, 2, generator=g).double()),
        ("param", torch.nn.Parameter(torch.randn(2, 2, generator=g))),
        ("count", torch.tensor(12345678901, dtype=torch.int64)),
        ("empty", torch.zeros(0, 3)),
    ])


def rezip_deflated(src, dst, top):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            name = top + info.filename[info.filename.index("/"):]
            zout.writestr(name, zin.read(info.filename))


def main():
    torch.manual_seed(0)
    reference = {"generator": "make_pth_fixtures.py", "torch": torch.__version__, "files": {}}

    lenet = zoo_defs.LeNet5(10)
    state = zoo_state(lenet)
    torch.save(state, os.path.join(HERE, "lenet5.pth"))
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(HERE, "lenet5.safetensors"))
    reference["files"]["lenet5.pth"] = describe(state)

    resnet = zoo_defs.CifarResNet(20, 10)
    state = zoo_state(resnet)
    torch.save(state, os.path.join(HERE, "resnet20.pth"))
    reference["files"]["resnet20.pth"] = describe(state)

    state = views_state()
    torch.save(state, os.path.join(HERE, "views.pth"))
    torch.save(state, os.path.join(HERE, "views_p4.pth"), pickle_protocol=4)
    reference["files"]["views_p4.pth"] = describe(state)
    rezip_deflated(os.path.join(HERE, "views.pth"), os.path.join(HERE, "views_deflated.pth"), "renamed")
    reference["files"]["views.pth"] = describe(state)
    reference["files"]["views_deflated.pth"] = describe(state)

    tiny = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.SGD(tiny.parameters(), lr=0.1, momentum=0.9)
    tiny(torch.randn(4, 3)).sum().backward()
    opt.step()
    torch.save({"epoch": 3, "best_acc": 0.5, "arch": "tiny", "model": tiny.state_dict(),
                "optimizer": opt.state_dict()}, os.path.join(HERE, "checkpoint.pth"))
    reference["files"]["checkpoint.pth"] = describe(tiny.state_dict())

    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(HERE, "script.pt"))

    with open(os.path.join(HERE, "reference.json"), "w") as f:
        # One line per tensor.
        f.write(json.dumps({k: v for k, v in reference.items() if k != "files"})[:-1] + ', "files": {\n')
        files = list(reference["files"].items())
        for n, (name, entries) in enumerate(files):
            f.write(f" {json.dumps(name)}: [\n")
            f.write(",\n".join("  " + json.dumps(e) for e in entries))
            f.write("\n ]" + ("," if n + 1 < len(files) else "") + "\n")
        f.write("}}\n")
    for name in sorted(os.listdir(HERE)):
        print(f"{name}: {os.path.getsize(os.path.join(HERE, name))} bytes")


if __name__ == "__main__":
    main()
