"""One accuracy for every runtime: the top-1 of a model on labelled images, whether the model
is an MXNet block (a Gluon network, an export loaded as ``SymbolBlock``, a quantized one) or
an OpenVINO compiled model (``openvino.compile_ir``). The INT8 gates of ``quantize`` and
``openvino --int8`` and NNCF's validation function all call it."""
import mxnet as mx
import numpy as np

__all__ = ["logits", "predict", "accuracy"]


def logits(model, images):
    """The outputs of ``model`` (an MXNet block, or an OpenVINO compiled model) for one batch
    of ``images`` (N, C, H, W float32, preprocessed), as a NumPy array."""
    x = np.asarray(images, np.float32)
    if hasattr(model, "collect_params"):                        # MXNet / Gluon
        return model(mx.nd.array(x)).asnumpy()
    return np.asarray(model(x)[0])                              # OpenVINO compiled model


def predict(model, images, batch=64):
    """The top-1 class of each of ``images`` (N, C, H, W float32, preprocessed)."""
    return np.concatenate([logits(model, images[i:i + batch]).argmax(1)
                           for i in range(0, len(images), batch)])


def accuracy(model, images, labels, batch=64):
    """``(top-1, per-image correctness as 0/1 floats)`` of ``model`` on ``images``."""
    correct = (predict(model, images, batch) == np.asarray(labels)).astype(float)
    return float(correct.mean()), correct
