# chatd in a container: one node. Build: docker build -t chatd .
# Run:   docker run -p 8000:8000 -v chatd-data:/var/lib/chatd -e CHATD_AUTH_SECRET=… chatd
# Admin: docker exec -it <container> chatd users add admin --admin --password-stdin
# The same image is every node of docker-compose.yml (there, configured through CHATD_* variables).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chatd ./chatd
COPY plugins ./plugins
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[redis,rabbitmq,postgres]'

FROM python:3.12-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/chatd --shell /usr/sbin/nologin chatd \
    && mkdir -p /var/lib/chatd && chown chatd:chatd /var/lib/chatd && chmod 700 /var/lib/chatd
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# Defaults for a container: listen on every interface (the container is the boundary), keep state in the volume.
ENV PORT=8000 \
    CHATD_SERVER_HOST=0.0.0.0 \
    CHATD_STORE_PATH=/var/lib/chatd/chatd.db \
    CHATD_UPLOADS_DIR=/var/lib/chatd/uploads \
    CHATD_SERVER_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/chatd
VOLUME /var/lib/chatd
USER chatd
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
# SIGTERM (docker stop) drains: everything acked is stored, sockets close with 1001. Give it drain_timeout + margin.
STOPSIGNAL SIGTERM
CMD ["chatd", "serve"]
