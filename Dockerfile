# The orderops image: `orderops worker` and `orderops console` in docker-compose.yml, and any other
# orderops command (`docker compose run --rm worker orderops ...`). docs/deployment.md.
#
# The project is installed in place (pip install -e) at /app: orderops finds process_defs/ and
# samples/ (the store's first seed) beside its package (orderops/config.py, PROJECT_ROOT), which a
# copy under site-packages would not have.
FROM python:3.11.17-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Graphviz's `dot` draws the console's order diagrams and `orderops render --format svg|png`;
# tini is PID 1, so that a stop's SIGTERM reaches orderops and exited children are reaped.
RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz tini \
    && rm -rf /var/lib/apt/lists/*

# Not root: orderops needs to write only its home, a volume in docker-compose.yml.
RUN groupadd --system --gid 10001 orderops \
    && useradd --system --uid 10001 --gid orderops --home-dir /var/lib/orderops --no-create-home --shell /usr/sbin/nologin orderops \
    && install -d -o orderops -g orderops -m 0700 /var/lib/orderops

WORKDIR /app
COPY pyproject.toml README.md starter.py worker.py ./
COPY orderops ./orderops
COPY activities ./activities
COPY workflows ./workflows
COPY process_defs ./process_defs
COPY samples ./samples
RUN pip install -e . && orderops --version

ENV ORDEROPS_HOME=/var/lib/orderops
USER orderops
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["orderops", "--help"]
