"""One accuracy for every runtime: the top-1 of a model on labelled images, whether the model
is an MXNet block (a Gluon network, an export loaded as ``SymbolBlock``, a quantized one) or
an OpenVINO compiled model (``openvino.compile_ir``). The INT8 gates of ``quantize`` and
``openvino --int8`` and NNCF's validation function all call it."""
import numpy as np

__all__ = ["predict", "accuracy"]


def predict(model, images, batch=64):
    """The top-1 class of each of ``images`` (N, C, H, W float32, preprocessed)."""
    import mxnet as mx
    out = []
    for i in range(0, len(images), batch):
        x = np.asarray(images[i:i + batch], np.float32)
        if hasattr(model, "collect_params"):                    # MXNet / Gluon
            logits = model(mx.nd.array(x)).asnumpy()
        else:                                                   # OpenVINO compiled model
            logits = np.asarray(model(x)[0])
        out.append(logits.argmax(1))
    return np.concatenate(out)


def accuracy(model, images, labels, batch=64):
    """``(top-1, per-image correctness as 0/1 floats)`` of ``model`` on ``images``."""
    correct = (predict(model, images, batch) == np.asarray(labels)).astype(float)
    return float(correct.mean()), correct
