"""A welcome step's words: the built-in templates, or the subject and body the author wrote in the console."""
from __future__ import annotations

from sqlalchemy import select

from .extensions import db
from .mail.messages import paragraphs
from .models import WelcomeStep


def welcome_template(template: str, context: dict) -> tuple[str, dict]:
    """The template and context for render_parts: `template`, with the step's own subject and body when set."""
    step = db.session.scalar(select(WelcomeStep).where(WelcomeStep.template == template).limit(1))
    return "welcome_step", {**context, "template": template, "own_subject": (step.subject or "").strip() if step else "",
                            "paragraphs": paragraphs(step.body) if step else []}
