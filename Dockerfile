# Production image: gunicorn serves the web app; the same image runs the worker with
#   docker run IMAGE python manage.py qcluster
# Build: docker build -t trueup .
FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TRUEUP_VAR_DIR=/app/var
RUN pip install --no-cache-dir "uv==0.13.9" \
 && useradd --system --create-home --uid 10001 trueup
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY --chown=trueup:trueup . .
COPY --from=assets /build/node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
COPY --from=assets /build/node_modules/htmx.org/LICENSE static/vendor/htmx.LICENSE
COPY --from=assets /build/node_modules/chart.js/dist/chart.umd.min.js /build/node_modules/chart.js/dist/chart.umd.min.js.map static/vendor/
COPY --from=assets /build/node_modules/chart.js/LICENSE.md static/vendor/chart.LICENSE
# collectstatic reads settings only; these placeholders never reach a running container.
RUN SECRET_KEY=collectstatic TRUEUP_ENCRYPTION_KEYS=collectstatic \
    python manage.py collectstatic --noinput --verbosity 0 \
 && mkdir -p var && chown -R trueup:trueup var
USER trueup
EXPOSE 8000
CMD ["gunicorn", "reconcile.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
