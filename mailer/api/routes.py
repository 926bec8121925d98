"""The resource modules of /api/v1; importing each adds its routes to the blueprint."""
from . import digests  # noqa: F401
from . import openapi  # noqa: F401
from . import posts  # noqa: F401
from . import subscribers  # noqa: F401
