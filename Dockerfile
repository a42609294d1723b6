# Image of the predistort Gradio app for a Hugging Face Docker Space (sdk: docker, app_port: 7860).
#
# Build locally:   docker build -t predistort .
# Run locally:     docker run --rm -p 7860:7860 predistort        then open http://localhost:7860
# GPU Space:       build with TORCH_INDEX=https://pypi.org/simple (see the ARG below) to get CUDA torch. On a
#                  Space, Variables set in its settings are passed to the build as build arguments, so set
#                  the Variable TORCH_INDEX there. Without it the app still runs on a GPU Space, on the CPU,
#                  and its status line says why (predistort/backend.py). The GPU path is not measured yet.

# Debian 12 (bookworm) is the release whose main archive has libllvm19 (below); Python 3.11 is the
# interpreter the pinned wheels of requirements.txt are tested with.
FROM python:3.11-slim-bookworm

# Dr.Jit (Mitsuba's JIT compiler) compiles its CPU kernels with the LLVM shared library it loads at run
# time, and needs LLVM >= 18: with Debian's default 14/15/16 it aborts the whole process at the first
# training or rendering step ("LLVM ERROR: Cannot select ... fmaximum"). Only the runtime library is
# needed (no -dev, no clang), without recommended packages, and apt's lists are removed in the same
# layer so they do not stay in the image. The version is pinned for reproducible builds; when a Debian
# point release replaces it, update it from `apt-cache policy libllvm19` in a bookworm container.
ARG LIBLLVM19_VERSION=1:19.1.7-3~deb12u1
RUN apt-get update \
    && apt-get install -y --no-install-recommends "libllvm19=${LIBLLVM19_VERSION}" \
    && rm -rf /var/lib/apt/lists/*

# Hugging Face runs Space containers as uid 1000: create that user with a home of its own, so that
# everything written at run time under $HOME is writable by it, including the app folder itself
# (Gradio writes its example cache and flagging data to ./.gradio); the code copied into it stays root's.
RUN useradd --create-home --uid 1000 user \
    && install -d -o user -g user /home/user/app

# Runtime settings:
# - HOME: Dr.Jit caches compiled kernels in ~/.drjit, Hugging Face Hub downloads go to ~/.cache/huggingface,
#   Matplotlib writes ~/.config/matplotlib, predistort caches measured light transports in
#   ~/.cache/predistort: all must be in a folder owned by uid 1000;
# - DRJIT_LIBLLVM_PATH: make Dr.Jit load the LLVM 19 installed above, whatever else is on the system;
# - GRADIO_SERVER_NAME/PORT: listen on all interfaces, on the port a Space forwards (app_port);
# - PYTHONUNBUFFERED: logs reach the Space's log view immediately;
# - NVIDIA_DRIVER_CAPABILITIES: on a GPU machine, what the NVIDIA container runtime mounts from the driver:
#   compute and utility give CUDA and nvidia-smi; graphics gives OptiX (libnvoptix.so.1), through which
#   Mitsuba's cuda_ad_rgb traces rays. Without it the CUDA variant loads but cannot render. Ignored on CPUs;
# - PIP_*: quiet, reproducible pip runs (no self-update check, no warning about installing as root).
ENV HOME=/home/user \
    DRJIT_LIBLLVM_PATH=/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    PYTHONUNBUFFERED=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /home/user/app

# Python dependencies, installed as root into the system site-packages (read-only for the app user) and
# before the application code, so that editing the code does not invalidate this large layer.
# requirements.txt pins every package with ==. torch==2.13.0 from PyPI is the CUDA build and pulls
# several GB of nvidia-* wheels; the extra index serves 2.13.0+cpu, which satisfies ==2.13.0 and which
# pip prefers (a local version sorts after the plain one). A GPU Space builds with
# TORCH_INDEX=https://pypi.org/simple, i.e. the default index only, to get the CUDA build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY requirements.txt ./
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" -r requirements.txt

# The application: the Gradio entry point, the package, the Mitsuba scenes, the example images and the
# trained weights. The files are root's, readable but not writable by the app user.
COPY app.py ./
COPY predistort/ ./predistort/
COPY scenes/ ./scenes/
COPY examples/ ./examples/
COPY weights/ ./weights/

# Drop root for running the app, as the Space does anyway. Numeric, so that it means uid 1000 (the
# user created above) without a lookup in the image's /etc/passwd.
USER 1000:1000

# Gradio's port (GRADIO_SERVER_PORT above); the Space's README declares `app_port: 7860`.
EXPOSE 7860

CMD ["python", "app.py"]
