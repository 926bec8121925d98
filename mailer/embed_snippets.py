"""The code a blog owner pastes: a plain form, an iframe, or a script tag."""
from __future__ import annotations

from html import escape


def _captcha_widget() -> str:
    """The captcha's widget for the plain form when CAPTCHA_PROVIDER is set: without it every signup would be refused."""
    from flask import has_app_context

    if not has_app_context():
        return ""
    from .web.captcha import widget

    found = widget()
    if not found:
        return ""
    return (f'\n  <div class="{found["widget_class"]}" data-sitekey="{escape(found["site_key"], quote=True)}"></div>'
            f'\n  <script src="{found["script"]}" async defer></script>')


def snippets(base_url: str, magnet: str = "handbook") -> dict[str, str]:
    base = escape(base_url, quote=True)
    return {
        "HTML form (works without JavaScript)": f"""<form action="{base}/subscribe" method="post">
  <input type="hidden" name="magnet" value="{magnet}">
  <input type="hidden" name="form" value="snippet">
  <input type="hidden" name="next" value="">  <!-- optional: a page of your blog to return to -->
  <div style="position:absolute;left:-5000px" aria-hidden="true"><input name="website" tabindex="-1" autocomplete="off"></div>
  <input type="email" name="email" placeholder="you@example.com" required>
  <input type="text" name="name" placeholder="First name (optional)">{_captcha_widget()}
  <button type="submit">Get the handbook</button>
</form>""",
        "iframe": f'<iframe src="{base}/embed?magnet={magnet}" title="Get the handbook" '
                  f'style="border:0;width:100%;max-width:480px;height:260px" loading="lazy"></iframe>',
        "script": f'<script src="{base}/embed.js" data-magnet="{magnet}" async></script>',
    }
