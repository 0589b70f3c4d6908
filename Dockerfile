# skillq worker image: slim, non-root, dependencies pinned by constraints.txt.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY worker ./worker
COPY tasks ./tasks
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir -c constraints.txt --wheel-dir /wheels ".[flower,http]"

FROM python:3.11-slim
# bubblewrap for ctx.sandbox. It needs user namespaces, which container
# runtimes often deny (Docker's default seccomp profile, Kubernetes without
# user namespaces): then the worker starts without a sandbox and logs why
# (SKILLQ_SANDBOX=auto), or refuses to start with SKILLQ_SANDBOX=bwrap.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 skillq
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "skillq[flower,http]" \
 && rm -rf /wheels
USER skillq
WORKDIR /home/skillq
ENV PYTHONUNBUFFERED=1
# Alive = this worker's heartbeat entry is in Redis (cheaper than a broadcast ping).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["skillq", "health"]
# Celery's warm shutdown on SIGTERM lets running jobs finish.
STOPSIGNAL SIGTERM
CMD ["skillq", "worker", "--pool", "prefork", "--loglevel", "INFO"]
