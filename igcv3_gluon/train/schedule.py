"""Learning-rate schedules, as functions of the (fractional) epoch.

* ``step``: lr * factor^(number of ``steps`` passed) (CIFAR, Sec. 4.1: /10 at 200, 300, 350;
  COCO: /10 every 60 epochs);
* ``exp``: lr * factor^floor(epoch) (ImageNet, Sec. 4.1: x0.98 every epoch);
* ``cosine``: lr * (1 + cos(pi * epoch / epochs)) / 2;
plus an optional linear warm-up over the first ``warmup_epochs``.
"""
import math

__all__ = ["LRSchedule"]


class LRSchedule:
    """The learning rate as a function of the fractional epoch (see the module doc)."""

    MODES = ("step", "exp", "cosine")

    def __init__(self, base_lr, mode="step", epochs=1, steps=(), factor=0.1, warmup_epochs=0):
        if mode not in self.MODES:
            raise ValueError("lr mode %r: choose one of %s" % (mode, ", ".join(self.MODES)))
        if base_lr <= 0:
            raise ValueError("the learning rate must be positive, got %g" % base_lr)
        if list(steps) != sorted(steps):
            raise ValueError("lr steps must increase, got %s" % list(steps))
        self.base_lr, self.mode, self.epochs = base_lr, mode, epochs
        self.steps, self.factor, self.warmup_epochs = list(steps), factor, warmup_epochs

    def __call__(self, epoch):
        if self.mode == "step":
            lr = self.base_lr * self.factor ** sum(epoch >= s for s in self.steps)
        elif self.mode == "exp":
            lr = self.base_lr * self.factor ** math.floor(epoch)
        else:
            lr = self.base_lr * 0.5 * (1 + math.cos(math.pi * min(epoch, self.epochs)
                                                    / self.epochs))
        if epoch < self.warmup_epochs:
            lr *= epoch / self.warmup_epochs
        return lr

    def describe(self):
        detail = {"step": "x%g at epochs %s" % (self.factor, self.steps),
                  "exp": "x%g every epoch" % self.factor,
                  "cosine": "cosine to 0 at epoch %d" % self.epochs}[self.mode]
        warm = ", linear warm-up %g epochs" % self.warmup_epochs if self.warmup_epochs else ""
        return "lr %g, %s%s" % (self.base_lr, detail, warm)
