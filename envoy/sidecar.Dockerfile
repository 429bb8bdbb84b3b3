# The Envoy sidecar that deploy/cloud runs beside the service in one task (ECS, Azure Container
# Instances): the committed sidecar config (`make envoy-deploy`) and the contract baked in.
#   docker build -f envoy/sidecar.Dockerfile -t seseragi-envoy:v1.40 envoy
# Tokens are verified with the JWKS at /etc/envoy/jwt/jwks.json: mount it there, or pass it in
# ENVOY_JWKS (ECS hands secrets over as environment variables). SESERAGI_EDGE_SECRET must be set.
FROM envoyproxy/envoy:v1.40.0

COPY rendered/envoy.sidecar.yaml /etc/envoy/envoy.yaml
COPY rendered/seseragi.binpb /etc/envoy/seseragi.binpb
COPY bin/graceful-envoy /usr/local/bin/graceful-envoy
RUN mkdir -p /etc/envoy/jwt && chown 101:101 /etc/envoy/jwt

# The image's envoy user, as deploy/k8s runs it.
USER 101:101
EXPOSE 8080
STOPSIGNAL SIGTERM
# Envoy exits at once on SIGTERM; the wrapper drains the listener and waits for streams first.
CMD ["/bin/bash", "/usr/local/bin/graceful-envoy", "-c", "/etc/envoy/envoy.yaml"]
