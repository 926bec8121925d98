"""The resource modules of /api/v1; importing each adds its routes to the blueprint."""
from . import (
    digests,  # noqa: F401
    openapi,  # noqa: F401
    posts,  # noqa: F401
    segments,  # noqa: F401
    subscribers,  # noqa: F401
)
