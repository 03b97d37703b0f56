# The cronctl daemon image: `docker run ... cronctl serve`.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 cronctl

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY reconciler ./reconciler
RUN pip install --no-cache-dir .

USER cronctl
ENV CRONCTL_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["cronctl"]
CMD ["serve"]
