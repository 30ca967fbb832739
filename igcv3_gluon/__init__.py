"""igcv3-gluon: IGCV3 (Sun, Li, Liu, Wang, BMVC 2018) in MXNet/Gluon."""
from .errors import quiet_interrupts_while_starting
from .version import __version__

quiet_interrupts_while_starting()       # a command's Ctrl-C during the imports: one line
from . import models, nn  # noqa: E402
from .models import get_model, list_models  # noqa: E402

__all__ = ["__version__", "nn", "models", "get_model", "list_models"]
