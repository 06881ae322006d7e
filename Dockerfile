# The web demo as a container, e.g. a Hugging Face Space with the Docker SDK (CPU); see docs/demo.md.
# Graia installs without the Futhark compiler and runs on its Numba backend.
FROM python:3.11-slim
# A C compiler for the package's (empty without Futhark) CMake build.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
# Spaces run containers as user 1000; Numba caches its compiled functions in the home directory.
RUN useradd -m -u 1000 user
USER user
ENV PATH=/home/user/.local/bin:$PATH NUMBA_CACHE_DIR=/home/user/.cache/numba
WORKDIR /home/user/app
COPY --chown=user . .
RUN pip install --no-cache-dir --user ".[demo]"
EXPOSE 7860
CMD ["graia", "demo", "--host", "0.0.0.0", "--port", "7860"]
