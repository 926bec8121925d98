"""Lead magnets: the files a subscriber gets for signing up, the handbook first of all."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..addresses import InvalidSignup
from ..models import LeadMagnet

SHIPPED = Path(__file__).resolve().parent
HANDBOOK_SLUG = "handbook"
HANDBOOK = {
    "slug": HANDBOOK_SLUG,
    "title": "The Multigenerational Manager's Handbook",
    "description": "Learn 25 Practical Ways to Manage Across Generations",
    "file": "multigenerational-managers-handbook.pdf",
    "filename": "multigenerational-managers-handbook.pdf",
    "content_type": "application/pdf",
}


def find_magnet(session: Session, slug: str | None) -> LeadMagnet:
    magnet = session.scalar(select(LeadMagnet).where(LeadMagnet.slug == (slug or HANDBOOK_SLUG)))
    if magnet is None:
        raise InvalidSignup("magnet", f"There is no lead magnet called {slug!r}.")
    return magnet


def button_text(magnet: LeadMagnet | None) -> str:
    """The signup button's words for a magnet: "Get the handbook", or "Get <its title>" (short titles)."""
    if not magnet or magnet.slug == HANDBOOK_SLUG:
        return "Get the handbook"
    return f"Get {magnet.title}" if len(magnet.title) <= 40 else "Get it free"


def file_path(magnet: LeadMagnet) -> Path:
    path = Path(magnet.file)
    return path if path.is_absolute() else SHIPPED / path
