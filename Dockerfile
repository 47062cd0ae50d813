# The gateway image used by docker-compose.yml: the locked dependencies, then the code.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY gateway gateway
COPY schema schema
COPY resolvers resolvers
COPY auth auth
COPY ledger ledger
COPY backends backends
COPY events events
RUN pip install --no-cache-dir -c requirements.lock .
EXPOSE 8000
CMD ["loyalty-gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
