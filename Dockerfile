# RelayOps web service image. Other processes of the stack (RQ worker, MQTT bridge) use the
# same image with another command; see docker-compose.yml.
FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY relay_ops ./relay_ops
COPY firmware_bridge ./firmware_bridge
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 relayops
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY config ./config
USER relayops
ENV RELAY_OPS_ENV=production
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["gunicorn", "-c", "config/gunicorn.conf.py"]
