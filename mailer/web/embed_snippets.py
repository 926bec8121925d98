"""The code a blog owner pastes: a plain form, an iframe, or a script tag."""
from __future__ import annotations

from html import escape

from ..magnets import HANDBOOK_SLUG, button_text
from ..models import LeadMagnet


def _captcha_widget() -> str:
    """The captcha's widget for the plain form when CAPTCHA_PROVIDER is set: without it every signup would be refused."""
    from flask import has_app_context

    if not has_app_context():
        return ""
    from .captcha import widget

    found = widget()
    if not found:
        return ""
    return (f'\n  <div class="{found["widget_class"]}" data-sitekey="{escape(found["site_key"], quote=True)}"></div>'
            f'\n  <script src="{found["script"]}" async defer></script>')


def snippets(base_url: str, magnet: LeadMagnet | None = None) -> dict[str, str]:
    """The three snippets for `magnet` (the handbook when None), its wording on the button."""
    base = escape(base_url, quote=True)
    button = escape(button_text(magnet), quote=True)
    slug = escape(magnet.slug if magnet else HANDBOOK_SLUG, quote=True)
    data_button = f' data-button="{button}"' if magnet and magnet.slug != HANDBOOK_SLUG else ""
    return {
        "HTML form (works without JavaScript)": f"""<form action="{base}/subscribe" method="post">
  <input type="hidden" name="magnet" value="{slug}">
  <input type="hidden" name="form" value="snippet">
  <input type="hidden" name="next" value="">  <!-- optional: a page of your blog to return to -->
  <div style="position:absolute;left:-5000px" aria-hidden="true"><input name="website" tabindex="-1" autocomplete="off"></div>
  <input type="email" name="email" placeholder="you@example.com" aria-label="Email" required>
  <input type="text" name="name" placeholder="First name (optional)" aria-label="First name (optional)">{_captcha_widget()}
  <button type="submit">{button}</button>
</form>""",
        "iframe": f'<iframe src="{base}/embed?magnet={slug}" title="{button}" '
                  f'style="border:0;width:100%;max-width:480px;height:480px" loading="lazy"></iframe>',
        "script": f'<script src="{base}/embed.js" data-magnet="{slug}"{data_button} async></script>',
    }
