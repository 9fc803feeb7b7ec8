# A small image of kms-reconciler: the tool as entrypoint, run as a non-root user.
#
#   docker build -t kms-reconciler .
#   docker run --rm -v "$PWD:/work:ro" kms-reconciler validate keyspecs
#   docker run --rm -v "$PWD:/work:ro" -e AWS_PROFILE -v "$HOME/.aws:/home/kmsr/.aws:ro" \
#     kms-reconciler plan keyspecs
#
# The inventory is mounted at /work (the working directory); mount it read-only unless a
# command writes a file there (plan --out, import). Pin the base image by digest in your own
# build (e.g. with Dependabot's docker ecosystem) for reproducible images.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# -- build: a wheel of the tool, built from this directory ---------------------------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY reconciler ./reconciler
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# -- runtime: the wheel and its dependencies, nothing else ---------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONSAFEPATH=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin kmsr
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["kms-reconciler"]
CMD ["--help"]
