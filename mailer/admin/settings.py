"""The settings page: the newsletter's name, sender, reply-to, blog, logo, colour, postal address, welcome words
and the archive switch, stored in one row that every web host and worker reads (mail/identity)."""
from __future__ import annotations

import hashlib

from flask import current_app, flash, redirect, render_template, url_for

from ..extensions import db
from ..mail import identity
from ..models import NewsletterSettings, utcnow
from . import bp
from .studio_form import SettingsForm, logo_kind

TYPED = ("newsletter_name", "sender_name", "reply_to", "blog_url", "logo_url", "accent_colour", "postal_address",
         "welcome_text")


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    studio = identity.current()
    form = SettingsForm(data=_values(studio))
    if form.validate_on_submit():
        upload = form.logo_file.data.read() if form.logo_file.data else b""
        try:
            kind = logo_kind(upload) if upload else None
        except ValueError as exc:
            form.logo_file.errors.append(str(exc))
        else:
            save(form, upload, kind)
            flash("Saved. The next page and the next mail use these settings.", "ok")
            return redirect(url_for("admin.settings"))
    return render_template("admin/settings.html", form=form, studio=identity.current(), section="settings",
                           mail_from=current_app.config["MAIL_FROM"]), 400 if form.errors else 200


def _values(studio: identity.Identity) -> dict:
    return {"newsletter_name": studio.name, "sender_name": studio.sender_name, "reply_to": studio.reply_to or "",
            "blog_url": studio.blog_url or "", "logo_url": studio.logo_url or "", "accent_colour": studio.accent,
            "postal_address": studio.postal_address, "welcome_text": studio.welcome_text,
            "archive_enabled": studio.archive_enabled}


def save(form: SettingsForm, upload: bytes, kind: str | None) -> None:
    """Store the form's values (and a new logo, or none) in the one settings row, then read them afresh."""
    row = identity.stored(db.session) or NewsletterSettings(id=identity.SETTINGS_ID)
    for name in TYPED:
        setattr(row, name, (getattr(form, name).data or "").strip() or None)
    row.archive_enabled = bool(form.archive_enabled.data)
    if upload:
        row.logo_data, row.logo_type, row.logo_hash = upload, kind, hashlib.sha256(upload).hexdigest()
    elif form.remove_logo.data:
        row.logo_data = row.logo_type = row.logo_hash = None
    row.updated_at = utcnow()  # the version: a digest's frame and the stylesheet's URL change with it
    db.session.add(row)
    db.session.commit()
    identity.forget()
