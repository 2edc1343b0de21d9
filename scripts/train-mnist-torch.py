#!/usr/bin/env python3
"""Trains the PyTorch example's network and writes its weights: `/usr/bin/python3 scripts/train-mnist-torch.py`.

The network is handlers/mnist-torch/handler.py's DigitNet (two convolutions and a small perceptron, ~20,000
parameters), trained with mini-batch SGD + momentum on the same 8,000 training digits as the ONNX example (the fixed
split of scripts/mnist-data.ts, read through scripts/mnist-export.ts, so it is computed in one place), then evaluated
on the 2,000 held-out digits it never saw. Writes the state_dict to handlers/mnist-torch/model.pt (about 90 kB).

Reproducible: fixed seeds, one thread, torch.use_deterministic_algorithms(True), and the kernels that depend least on
the machine: ATen's portable (non-AVX) code path and no oneDNN, so matrix products go to the system BLAS. With the
same torch build and BLAS (Debian's python3-torch and reference libblas3) a run reproduces model.pt byte for byte;
a different BLAS (e.g. OpenBLAS) or torch version can change the last bits of the weights, not the accuracy.

Needs python3 with torch and numpy (Debian: python3-torch python3-numpy) and Node (to export the digits).
Flags:
  --out FILE   where to write the weights (default handlers/mnist-torch/model.pt)
  --check      write nothing: train afresh, exit 1 unless the result equals the committed model.pt byte for byte
               and the committed weights score >= 95 % on the held-out digits through the handler
  --eval       no training: run the 2,000 held-out digits through Handler(config, job_spec).handle_batch on the
               committed weights (as jetbatch would, cwd = the project folder) and exit 1 below 95 %
  --data FILE  digits exported by scripts/mnist-export.ts (default: export them to a temporary file now)
"""
import os

# Before torch is imported: the portable kernels, so the arithmetic does not depend on the CPU's vector extensions.
os.environ["ATEN_CPU_CAPABILITY"] = "default"
os.environ["OMP_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.join(ROOT, "handlers", "mnist-torch")
MODEL_PATH = os.path.join(PROJECT, "model.pt")

EPOCHS = 12
BATCH = 32
LEARNING_RATE = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
TRAIN_SEED = 7
MIN_ACCURACY = 0.95


def load_handler_module():
    """handlers/mnist-torch/handler.py as a module: the network is defined there, once."""
    spec = importlib.util.spec_from_file_location("mnist_torch_handler", os.path.join(PROJECT, "handler.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_digits(path):
    """The file of scripts/mnist-export.ts: (pixels uint8 [count, 784], labels uint8 [count], train idx, test idx)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"JBMNIST1":
        raise ValueError(f"{path} is not a digits file written by scripts/mnist-export.ts")
    count, pixels, n_train, n_test = np.frombuffer(data, dtype="<u4", count=4, offset=8).tolist()
    at = 24
    images = np.frombuffer(data, dtype=np.uint8, count=count * pixels, offset=at).reshape(count, pixels)
    at += count * pixels
    labels = np.frombuffer(data, dtype=np.uint8, count=count, offset=at)
    at += count
    train = np.frombuffer(data, dtype="<u4", count=n_train, offset=at).astype(np.int64)
    test = np.frombuffer(data, dtype="<u4", count=n_test, offset=at + 4 * n_train).astype(np.int64)
    return images, labels, train, test


def export_digits():
    with tempfile.TemporaryDirectory(prefix="jetbatch-mnist-") as tmp:
        out = os.path.join(tmp, "digits.bin")
        subprocess.run(["node", "--import", "tsx", "scripts/mnist-export.ts", "--out", out], cwd=ROOT, check=True)
        return read_digits(out)


def train(net_class, images, labels, train_idx):
    torch.manual_seed(TRAIN_SEED)
    net = net_class()
    x = torch.from_numpy(images[train_idx].astype(np.float32))
    y = torch.from_numpy(labels[train_idx].astype(np.int64))
    opt = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    shuffle = torch.Generator().manual_seed(TRAIN_SEED)
    n = len(train_idx)
    for epoch in range(EPOCHS):
        # Step decay: the last third of the epochs refines at a tenth of the rate.
        for group in opt.param_groups:
            group["lr"] = LEARNING_RATE if epoch < EPOCHS * 2 // 3 else LEARNING_RATE / 10
        net.train()
        order = torch.randperm(n, generator=shuffle)
        loss_sum, correct = 0.0, 0
        for start in range(0, n, BATCH):
            idx = order[start:start + BATCH]
            logits = net(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        print(f"epoch {epoch + 1}/{EPOCHS}: loss {loss_sum / n:.4f}, training accuracy {100 * correct / n:.2f}%", flush=True)
    return net.eval()


def model_bytes(net):
    """The state_dict as torch.save writes it. Saved to memory, so the archive's inner folder name ('archive') does
    not depend on the output file's name and --check compares like with like."""
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return buf.getvalue()


def handler_accuracy(module, images, labels, test_idx, model_path):
    """Held-out accuracy through Handler.handle_batch, run as jetbatch runs it: cwd = the project folder, 100 digits
    per batch, items {id, pixels} with pixels as a list and, for every other batch, as bytes."""
    cwd = os.getcwd()
    os.chdir(PROJECT)
    try:
        handler = module.Handler({"model": os.path.relpath(model_path, PROJECT)}, {"job_id": "eval", "api_name": "mnist-torch"})
        right = 0
        for b, start in enumerate(range(0, len(test_idx), 100)):
            ids = test_idx[start:start + 100].tolist()
            items = [{"id": i, "pixels": images[i].tobytes() if b % 2 else images[i].tolist()} for i in ids]
            preds = handler.handle_batch(items, str(b))
            assert [p["id"] for p in preds] == ids, "predictions come back in item order, one per item"
            right += sum(p["label"] == labels[p["id"]] for p in preds)
        for bad in ({"id": 1, "pixels": [0] * 10}, {"pixels": [0] * 784}, {"id": 2, "pixels": ["x"] * 784}, {"id": 3, "pixels": None}):
            try:
                handler.handle_batch([bad], "bad")
            except module.PermanentError:
                continue
            raise AssertionError(f"a malformed item did not raise PermanentError: {str(bad)[:60]}")
        return right / len(test_idx)
    finally:
        os.chdir(cwd)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=MODEL_PATH)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--eval", action="store_true")
    parser.add_argument("--data")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = False
    module = load_handler_module()
    images, labels, train_idx, test_idx = read_digits(args.data) if args.data else export_digits()
    print(f"digits: {len(train_idx)} for training, {len(test_idx)} held out (the split of scripts/mnist-data.ts)")

    if args.eval:
        acc = handler_accuracy(module, images, labels, test_idx, MODEL_PATH)
        print(f"held-out accuracy through handler.py on {MODEL_PATH}: {100 * acc:.2f}% on {len(test_idx)} digits")
        sys.exit(0 if acc >= MIN_ACCURACY else 1)

    started = time.perf_counter()
    net = train(module.DigitNet, images, labels, train_idx)
    with torch.no_grad():
        predicted = net(torch.from_numpy(images[test_idx].astype(np.float32))).argmax(1).numpy()
    acc = float((predicted == labels[test_idx]).mean())
    data = model_bytes(net)
    print(f"trained on {len(train_idx)} digits in {time.perf_counter() - started:.1f} s; "
          f"held-out accuracy {100 * acc:.2f}% on {len(test_idx)} digits never seen in training")
    print(f"weights: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")

    if args.check:
        committed = open(MODEL_PATH, "rb").read() if os.path.exists(MODEL_PATH) else None
        same = committed == data
        print(f"{MODEL_PATH} is reproduced byte for byte" if same else f"{MODEL_PATH} differs from a fresh training run")
        handler_acc = handler_accuracy(module, images, labels, test_idx, MODEL_PATH) if committed is not None else 0.0
        print(f"held-out accuracy through handler.py on the committed weights: {100 * handler_acc:.2f}%")
        sys.exit(0 if same and handler_acc >= MIN_ACCURACY else 1)

    out = os.path.abspath(args.out)
    with open(out, "wb") as f:
        f.write(data)
    print(f"wrote {out}")
    handler_acc = handler_accuracy(module, images, labels, test_idx, out)
    print(f"held-out accuracy through handler.py on {out}: {100 * handler_acc:.2f}%")
    sys.exit(0 if acc >= MIN_ACCURACY and handler_acc >= MIN_ACCURACY else 1)


if __name__ == "__main__":
    main()
