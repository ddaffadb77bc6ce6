# The server image: used by docker-compose.yaml for the bootstrap, migrate, server and edge jobs.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY server server
COPY clients clients
RUN pip install --no-cache-dir --no-deps ./clients .
USER nobody
EXPOSE 50051 8080
ENV GRPC_ADDRESS=0.0.0.0:50051
CMD ["chatbot-server", "serve"]
