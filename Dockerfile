# One image for every process: web (gunicorn), worker and beat (celery), and one-off `mailer` commands.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Editable install: the app finds templates/ and migrations/ at the repository root, next to the package.
COPY . /app
RUN pip install -e . \
    && useradd --create-home --uid 10001 --user-group app \
    && mkdir -p /app/instance \
    && chown app:app /app/instance

USER app

EXPOSE 8000

CMD ["gunicorn", "-c", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "2", "mailer:create_app()"]
