FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY ledger ledger
COPY treasury treasury
COPY api api
COPY migrations migrations
RUN pip install --no-cache-dir .
ENV AMIYAN_HOST=0.0.0.0
EXPOSE 8000
CMD ["amiyan", "serve"]
