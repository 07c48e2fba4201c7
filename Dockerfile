# One image for web and workers. The GPU worker gets the NVIDIA device from compose; torch's
# CUDA wheels carry their own CUDA runtime, so the base image needs no CUDA toolkit.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY spider_web ./spider_web
COPY annotations ./annotations
COPY inference ./inference
RUN pip install --no-cache-dir .
COPY . .
RUN SECRET_KEY=build-only python manage.py collectstatic --no-input -v 0
RUN useradd --create-home --uid 1000 spider && mkdir -p /data/media && chown -R spider /data
USER spider
EXPOSE 8000
# 2 processes x 4 threads served the review API best on 2 cores (bench/review_bench.py);
# gunicorn takes its process count from WEB_CONCURRENCY: raise it with the cores.
ENV WEB_CONCURRENCY=2
CMD ["gunicorn", "spider_web.wsgi:application", "--bind", "0.0.0.0:8000", "--threads", "4", \
     "--timeout", "120", "--access-logfile", "-"]
