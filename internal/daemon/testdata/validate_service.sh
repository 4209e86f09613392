#!/bin/bash
# validate_service.sh
for i in {1..30}; do
  if curl -sf http://localhost:${PORT:-8080}/health > /dev/null; then echo "Service is healthy"; exit 0; fi
  sleep 2
done
echo "Service failed health check"; exit 1
