"""Batch inference with PyTorch: classifies 28x28 handwritten digits with model.pt, a small convolutional network
trained by scripts/train-mnist-torch.py on the same digits as the ONNX example (handlers/mnist).

A Cortex-style handler: jetbatch runs this file in one Python process per worker thread, with the project folder as
the working directory. Any PyTorch model fits the same mould: build the network, load its state_dict once per
process, run each batch as one tensor.

Item:   {"id": ..., "pixels": [...]}  784 grey levels 0-255, row-major (a list, or bytes from a MessagePack bin).
Result: one {"id", "label", "score"} per item, in item order ("score" = softmax probability of "label").

Config (API config in the daemon YAML, overridable per job):
- model: path of the state_dict, relative to the project folder. Default "model.pt".
- torch_threads: torch.set_num_threads for this process; keep threads x this <= cores. Default 1.
- probabilities: also return all 10 probabilities per item. Default false.

Device: CUDA when the worker thread has a GPU (jetbatch sets CUDA_VISIBLE_DEVICES from the API's `gpus`) and
torch.cuda.is_available(); the CPU otherwise (Debian's python3-torch is a CPU build).

A malformed item raises PermanentError (code MNIST_BAD_ITEM): its batch is dead-lettered at once, without retries.
A missing or unreadable model file raises in __init__, which ends the job as worker_error with the Python error.
"""
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

try:
    from jetbatch import PermanentError, logger
except ImportError:  # plain Python (scripts/train-mnist-torch.py --eval, a unit test): no jetbatch module on the path
    import logging

    logger = logging.getLogger("mnist-torch")

    class PermanentError(Exception):
        """Stand-in for jetbatch.PermanentError outside jetbatch (same signature)."""

        permanent = True

        def __init__(self, message="", code="JB_HANDLER_PERMANENT"):
            super().__init__(message)
            self.code = code


PIXELS = 784
CLASSES = 10
BAD_ITEM = "MNIST_BAD_ITEM"  # the dead letter's error code for a malformed item


class DigitNet(nn.Module):
    """Two 5x5 convolutions with max pooling, then a 256-64-10 perceptron (about 20,000 parameters).

    Takes raw grey levels [N, 784] (float32, 0-255) and returns logits [N, 10]: the scaling is part of the network,
    so every caller feeds the same thing.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5)  # 28x28 -> 8 x 24x24, pooled to 12x12
        self.conv2 = nn.Conv2d(8, 16, 5)  # -> 16 x 8x8, pooled to 4x4
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, CLASSES)

    def forward(self, pixels):
        x = (pixels / 255.0).reshape(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


# Networks of this process, by model file (and its version) and device. The process lives as long as its worker
# thread, across jobs, so a model is loaded once per process; Handler instances (one per job) share it.
_networks = {}


def _device():
    """The thread's GPU when it has one and this torch can use it; the CPU otherwise."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible not in ("", "-1") and torch.cuda.is_available():
        return torch.device("cuda", 0)  # the one device CUDA_VISIBLE_DEVICES leaves visible
    return torch.device("cpu")


def _load(path, device):
    stat = os.stat(path)  # a missing file raises here, in __init__: the job ends as worker_error
    # Size and mtime are in the key, so a model replaced in place is loaded afresh by the next job.
    key = (path, stat.st_size, stat.st_mtime_ns, str(device))
    net = _networks.get(key)
    if net is None:
        started = time.perf_counter()
        net = DigitNet()
        net.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        net.to(device).eval()
        _networks[key] = net
        logger.info("model loaded", extra={
            "model": path,
            "device": str(device),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "parameters": sum(p.numel() for p in net.parameters()),
            "load_ms": round((time.perf_counter() - started) * 1000),
        })
    return net


def _pixels(item, index):
    """The item's 784 grey levels as float32, or PermanentError saying what is wrong with it."""
    item_id = item.get("id") if isinstance(item, dict) else None
    where = f"item {index}" + (f" (id {item_id!r})" if item_id is not None else "")
    if not isinstance(item_id, (str, int)) or isinstance(item_id, bool):
        raise PermanentError(f"{where}: expected {{id: str | int, pixels: 784 numbers}}", code=BAD_ITEM)
    px = item.get("pixels")
    try:
        if isinstance(px, (bytes, bytearray, memoryview)):
            values = np.frombuffer(px, dtype=np.uint8).astype(np.float32)
        elif isinstance(px, (list, tuple, np.ndarray)):
            values = np.asarray(px, dtype=np.float32)
        else:
            raise PermanentError(f"{where}: pixels must be a list of {PIXELS} numbers or {PIXELS} bytes", code=BAD_ITEM)
    except (TypeError, ValueError) as err:
        raise PermanentError(f"{where}: pixels are not all numbers ({err})", code=BAD_ITEM) from err
    if values.shape != (PIXELS,):
        raise PermanentError(f"{where}: pixels has {values.size} values, not {PIXELS} (28x28)", code=BAD_ITEM)
    if not np.isfinite(values).all():
        bad = int(np.argmin(np.isfinite(values)))
        raise PermanentError(f"{where}: pixel {bad} is not a finite number", code=BAD_ITEM)
    return values


class Handler:
    def __init__(self, config, job_spec):
        torch.set_num_threads(int(config.get("torch_threads", 1)))
        self.device = _device()
        self.net = _load(os.path.abspath(str(config.get("model", "model.pt"))), self.device)
        self.probabilities = config.get("probabilities") is True

    def handle_batch(self, payload, batch_id):
        if len(payload) == 0:
            return []
        rows = np.empty((len(payload), PIXELS), dtype=np.float32)
        for i, item in enumerate(payload):
            rows[i] = _pixels(item, i)
        with torch.inference_mode():
            probs = torch.softmax(self.net(torch.from_numpy(rows).to(self.device)), dim=1).cpu()
        scores, labels = probs.max(dim=1)
        out = []
        for i, item in enumerate(payload):
            p = {"id": item["id"], "label": int(labels[i]), "score": float(scores[i])}
            if self.probabilities:
                p["probabilities"] = probs[i].tolist()
            out.append(p)
        return out
