"""The production app plus one bare route, served by the same gunicorn: the baseline of bench/click_redirect.py."""
from mailer import create_app

app = create_app()


@app.get("/bench/bare")
def bare():
    return "ok"
