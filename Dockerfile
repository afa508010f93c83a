# Multi-stage build: a static binary on a minimal base, run as non-root.
#   docker build -t mailhook .
#   docker run -p 25:2525 -p 8025:8025 -v mailhook-data:/data -v ./config.yaml:/etc/mailhook/config.yaml:ro mailhook
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mailhook ./cmd/mailhook

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mailhook /usr/local/bin/mailhook
# data_dir: /data in the config; the nonroot user (65532) owns it.
VOLUME ["/data"]
EXPOSE 2525 1143 1110 8025
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/mailhook"]
CMD ["serve", "--config", "/etc/mailhook/config.yaml"]
