"""Magnet files uploaded before uploads were kept in the database: brought in from the disk of the host that has
them (`mailer magnets store-files`), so every web host serves them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import LeadMagnet
from ..uploads import store


@dataclass
class Moved:
    stored: list[str] = field(default_factory=list)    # "slug: path"
    missing: list[str] = field(default_factory=list)   # "slug: path", not found here
    imports: list[str] = field(default_factory=list)   # the names of CSV imports left unfinished on this disk


def store_disk_files(session: Session, instance: Path, elsewhere: Path | None = None) -> Moved:
    """Store each magnet file named by an absolute path (found there, or by its name in `elsewhere`); one commit
    per file, so running it again carries on. Also names the imports the instance folder left half done."""
    moved = Moved()
    for magnet in session.scalars(select(LeadMagnet).where(LeadMagnet.file != "").order_by(LeadMagnet.id)).all():
        path = Path(magnet.file)
        if not path.is_absolute():
            continue  # shipped with the package: every install has it
        found = next((p for p in (path, elsewhere and elsewhere / path.name) if p and p.is_file()), None)
        if found is None:
            moved.missing.append(f"{magnet.slug}: {path}")
            continue
        with found.open("rb") as f:
            store.save(session, f, magnet_id=magnet.id)
        magnet.file = ""
        session.commit()
        moved.stored.append(f"{magnet.slug}: {found}")
    for state_file in sorted((instance / "imports").glob("*.json")):
        state = json.loads(state_file.read_text())
        if not state.get("done"):
            moved.imports.append(state.get("name") or state_file.stem)
    return moved
